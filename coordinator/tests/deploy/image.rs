//! The container image, built for real and run: scripts/image-check.sh makes
//! a Debian base with debootstrap, builds deploy/docker/Containerfile.prebuilt
//! over this build's binaries with buildah (chroot isolation, no daemon), and
//! runs an agent and the coordinator from the image's filesystem as uid
//! 10001 against a throwaway Postgres. Needs root, buildah and debootstrap
//! (the README's test command installs them).

use crate::support;

use std::process::Command;

#[test]
fn the_image_builds_and_its_binaries_run_a_passing_run() {
    if !support::needs_root("image", "build images with buildah and chroot into them") {
        return;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_coordinator")).parent().expect("bin dir").to_path_buf();
    let out = Command::new("scripts/image-check.sh")
        .env("LOADGEN_BIN_DIR", &bin_dir)
        .current_dir(root)
        .output()
        .expect("run scripts/image-check.sh (the README's test command installs buildah and debootstrap)");
    let text = support::show(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("image user 10001:10001, command [agent]"), "{text}");
    assert!(text.contains("image check passed"), "{text}");
    assert!(text.contains("Gates: PASSED"), "{text}");
}
