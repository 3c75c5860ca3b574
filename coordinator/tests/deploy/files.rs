//! The deployment files: the Kubernetes manifests render and validate
//! offline against a pinned Kubernetes version, the Dockerfile parses and
//! copies files that exist, the compose file is accepted (deploy/check.py
//! does the work; `.ci/run` installs its tools).

use std::process::Command;

#[test]
fn deployment_files_render_and_validate() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("python3")
        .arg("deploy/check.py")
        .current_dir(root)
        .output()
        .expect("python3 runs (.ci/run installs the deploy checks' tools)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "deploy/check.py failed:\n{text}");
    assert!(text.contains("deploy checks passed: 3 kustomizations") && text.contains("12 dashboard panels"), "{text}");
}
