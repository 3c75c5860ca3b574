//! Where results go: the files each renderer writes (`--json`, `--report`,
//! `--output FORMAT=FILE`), the interval-log directory, and how progress is
//! shown. Every target is checked before the run (its directory, or the
//! nearest existing parent of a directory still to be made, must be
//! writable), so a result is never lost after a long run to a typo.

use std::path::{Path, PathBuf};

use super::PlanError;

/// One file a renderer writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The renderer's name (see `coordinator --help`: json, html, markdown, ...).
    pub format: String,
    /// The file, or "-" for standard output.
    pub path: PathBuf,
    /// The flag it came from, for messages.
    pub flag: &'static str,
}

impl Target {
    pub fn is_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }
}

/// How progress is shown during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LiveMode {
    /// The table on a terminal, one line a second otherwise.
    #[default]
    Auto,
    /// A table per agent redrawn in place.
    Table,
    /// One line a second.
    Line,
}

impl LiveMode {
    /// Whether the live view is the table (a terminal, or asked for).
    pub fn table(self) -> bool {
        use std::io::IsTerminal;
        match self {
            LiveMode::Table => true,
            LiveMode::Line => false,
            LiveMode::Auto => std::io::stderr().is_terminal(),
        }
    }
}

/// Every output of an invocation.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub targets: Vec<Target>,
    /// HdrHistogram interval logs go here.
    pub hlog_dir: Option<PathBuf>,
    pub live: LiveMode,
    /// Serve live figures for Prometheus here (--metrics-listen).
    pub metrics: Option<std::net::SocketAddr>,
    /// ... and for this long after the result is written (--linger).
    pub linger: std::time::Duration,
}

impl Outputs {
    /// A `--json FILE` option as the pipeline's outputs.
    pub fn json(json: Option<&PathBuf>) -> Outputs {
        Outputs {
            targets: json
                .iter()
                .map(|p| Target { format: "json".into(), path: (*p).clone(), flag: "--json" })
                .collect(),
            ..Default::default()
        }
    }

    /// True when a target writes to standard output (the text summary then
    /// goes to standard error).
    pub fn stdout_taken(&self) -> bool {
        self.targets.iter().any(Target::is_stdout)
    }

    /// Refuse targets that could not be written, before anything starts.
    pub fn check(&self) -> Result<(), PlanError> {
        for t in self.targets.iter().filter(|t| !t.is_stdout()) {
            let dir = t.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            check_dir(t.flag, &t.path, dir)?;
        }
        if let Some(dir) = &self.hlog_dir {
            check_dir("--hlog-dir", dir, dir)?;
        }
        Ok(())
    }
}

/// `dir` exists and is writable, or can be made inside a writable parent.
fn check_dir(flag: &'static str, shown: &Path, dir: &Path) -> Result<(), PlanError> {
    let err = |detail: String| PlanError::Output { flag, path: shown.display().to_string(), detail };
    let mut existing = dir;
    while !existing.exists() {
        existing = existing.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    }
    if !existing.is_dir() {
        return Err(err(format!("{} is not a directory", existing.display())));
    }
    // Find out now, not after the run, that the result cannot be written.
    let probe = existing.join(format!(".loadgen-write-check-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| err(format!("cannot write in {}: {e}", existing.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Make the directories a file needs, then create it.
pub fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: PathBuf) -> Target {
        Target { format: "json".into(), path, flag: "--json" }
    }

    #[test]
    fn missing_directories_under_a_writable_parent_are_fine() {
        let tmp = tempfile::tempdir().expect("tmp");
        let nested = tmp.path().join("results/today/run.json");
        let o = Outputs { targets: vec![target(nested.clone())], ..Default::default() };
        o.check().expect("creatable");
        assert!(!tmp.path().join("results").exists(), "checking creates nothing");
        create_file(&nested).expect("created with its directories");
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").expect("file");
        let o = Outputs { targets: vec![target(file.join("x.json"))], ..Default::default() };
        let e = o.check().expect_err("under a file");
        assert!(e.to_string().contains("is not a directory"), "{e}");
        assert!(Outputs { targets: vec![target("-".into())], ..Default::default() }.stdout_taken());
    }
}
