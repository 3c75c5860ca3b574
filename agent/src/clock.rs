//! `--clock-control`: this agent's wall clock, shiftable by the
//! coordinator's `clock-skew` fault. The agent runs itself again under
//! libfaketime with a control file of its own ([`take_control`]), and a
//! fault writes the offset there ([`ClockControl::set`]); libfaketime reads
//! it at most a second later. The file's directory is removed at exit.

use std::path::{Path, PathBuf};

use loadgen_common::clock;

/// Set (to the control file's path) once the agent runs under libfaketime.
const CONTROL_ENV: &str = "LOADGEN_CLOCK_FILE";

/// This process's control file.
#[derive(Debug)]
pub struct ClockControl {
    file: PathBuf,
}

/// With `--clock-control`: before any thread starts, run this program again
/// under libfaketime (this call then does not return), or, in the program
/// run again, the control it set up. `None` without the flag.
pub fn take_control(wanted: bool) -> Result<Option<ClockControl>, String> {
    if !wanted {
        return Ok(None);
    }
    if let Some(file) = std::env::var_os(CONTROL_ENV) {
        let file = PathBuf::from(file);
        return if file.is_file() {
            Ok(Some(ClockControl { file }))
        } else {
            Err(format!("--clock-control: the control file {} is gone", file.display()))
        };
    }
    let lib = clock::libfaketime().ok_or_else(|| format!("--clock-control: {}", clock::MISSING))?;
    let dir = clock::control_dir(std::process::id());
    std::fs::create_dir_all(&dir).map_err(|e| format!("--clock-control: cannot create {}: {e}", dir.display()))?;
    let file = dir.join("offset");
    let control = ClockControl { file: file.clone() };
    control.set(0)?;
    let preload = match std::env::var("LD_PRELOAD") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", lib.display()),
        _ => lib.display().to_string(),
    };
    let exe = std::env::current_exe().map_err(|e| format!("--clock-control: cannot find this program: {e}"))?;
    use std::os::unix::process::CommandExt;
    // The same process (same pid, so the directory's name stays true), now
    // with the wall clock read through libfaketime; monotonic time stays true.
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("LD_PRELOAD", preload)
        .env("FAKETIME_TIMESTAMP_FILE", &file)
        .env("FAKETIME_CACHE_DURATION", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env(CONTROL_ENV, &file)
        .exec();
    let _ = std::fs::remove_dir_all(&dir);
    Err(format!("--clock-control: cannot run again under libfaketime: {err}"))
}

impl ClockControl {
    /// Shift the wall clock by `offset_us` (0: the true time) from the next
    /// time libfaketime reads the file (at most a second later).
    pub fn set(&self, offset_us: i64) -> Result<(), String> {
        let tmp = self.file.with_extension("next");
        std::fs::write(&tmp, format!("{}\n", clock::offset_text(offset_us)))
            .and_then(|()| std::fs::rename(&tmp, &self.file))
            .map_err(|e| format!("cannot write the clock's control file {}: {e}", self.file.display()))
    }

    fn dir(&self) -> Option<&Path> {
        self.file.parent()
    }
}

impl Drop for ClockControl {
    fn drop(&mut self) {
        if let Some(dir) = self.dir() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
