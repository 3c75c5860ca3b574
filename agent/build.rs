//! Records which duroxide-pg this agent is built against, from the
//! workspace's Cargo.lock: a release from crates.io (`0.1.38`), or a local
//! checkout patched in with `cargo build --config 'patch.crates-io...'`
//! (`0.1.38 (local checkout)`), so its Hello tells builds apart.

fn main() {
    let lock = "../Cargo.lock";
    println!("cargo:rerun-if-changed={lock}");
    // scripts/build-agent.sh names the build it makes: builds of several
    // releases share one target directory, and a lock file's time alone
    // does not tell them apart.
    println!("cargo:rerun-if-env-changed=LOADGEN_BUILD_LABEL");
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let version = provider_build(&text).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LOADGEN_DUROXIDE_PG_BUILD={version}");
}

/// The duroxide-pg package of a lock file, as `version` plus where it came
/// from when that is not crates.io.
fn provider_build(lock: &str) -> Option<String> {
    lock.split("[[package]]").find_map(|block| {
        let field = |key: &str| {
            block.lines().find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().trim_matches('"').to_string()))
        };
        if field("name = ")? != "duroxide-pg" {
            return None;
        }
        let version = field("version = ")?;
        Some(match field("source = ") {
            Some(s) if s.starts_with("registry+") => version,
            Some(s) if s.starts_with("git+") => format!("{version} (git)"),
            Some(_) => format!("{version} (other source)"),
            None => format!("{version} (local checkout)"),
        })
    })
}
