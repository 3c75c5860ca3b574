//! Agent builds as data: an agent binary named by the duroxide-pg release (or
//! checkout) it is built against, made on demand by this tool's
//! `scripts/build-agent.sh` (a copy of the workspace pinned to the release,
//! in a target directory of its own; this checkout's manifests untouched).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why an agent of a release could not be had.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// Bad input: no such release, not a duroxide-pg checkout (exit 2).
    #[error("{0}")]
    Refused(String),
    /// The build itself failed, or cannot run here (exit 3).
    #[error("{0}")]
    Failed(String),
}

/// The script that builds an agent, from this tool's source checkout
/// (`LOADGEN_SOURCE_DIR`, or where this binary was built from).
fn script() -> Result<PathBuf, BuildError> {
    let root = std::env::var_os("LOADGEN_SOURCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    let script = root.join("scripts/build-agent.sh");
    if script.is_file() {
        Ok(script)
    } else {
        Err(BuildError::Failed(format!(
            "building an agent needs this tool's source checkout: {} not found (set LOADGEN_SOURCE_DIR)",
            script.display()
        )))
    }
}

/// True when `text` names a release (`0.1.37`) rather than a path.
pub fn is_release(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The agent binary built against duroxide-pg `what` (a release such as
/// `0.1.37`, or a checkout's directory); built on first use, cached after.
/// `progress` is handed the build's progress lines (a first build takes
/// minutes) and, on success, the binary's own account of its build.
pub fn agent_for(what: &str, progress: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    use std::io::BufRead;
    let script = script()?;
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(what)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| BuildError::Failed(format!("cannot run {}: {e}", script.display())))?;
    // The progress line shows at once (a first build takes minutes); the
    // last line is the result, or the one-line reason it failed.
    let mut last = String::new();
    if let Some(err) = child.stderr.take() {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if line.starts_with("build-agent: building") {
                progress(&line);
            } else if !line.trim().is_empty() {
                last = line;
            }
        }
    }
    let mut path = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut path);
    }
    let status = child.wait().map_err(|e| BuildError::Failed(format!("the build of {what}: {e}")))?;
    let why = last.strip_prefix("build-agent: ").unwrap_or(&last).to_string();
    match status.code() {
        Some(0) => {
            let path = PathBuf::from(path.trim());
            if path.is_file() {
                progress(&last);
                Ok(path)
            } else {
                Err(BuildError::Failed(format!("the build of {what} named no agent binary ({why})")))
            }
        }
        Some(2) => Err(BuildError::Refused(why)),
        _ => Err(BuildError::Failed(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_told_from_paths() {
        for r in ["0.1.37", "10.2.0"] {
            assert!(is_release(r), "{r}");
        }
        for p in ["../duroxide-pg", "0.1", "0.1.x", "v0.1.37", "0.1.37.1", "./0.1.37/"] {
            assert!(!is_release(p), "{p}");
        }
    }
}
