//! A scenario's options: declared once as [`OptionSpec`]s (key, default,
//! help), given as text (`--set key=value`, a profile's `[profile.options]`,
//! the wire), and read into typed values by a [`Reader`] that checks each
//! value and refuses keys the scenario does not know.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use loadgen_common::units;

use super::ScenarioError;

/// One option a scenario declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionSpec {
    pub key: &'static str,
    /// The default, in the syntax the option is given in.
    pub default: &'static str,
    /// What it does, one line.
    pub help: &'static str,
}

/// Options as given: key -> value text.
pub type Options = BTreeMap<String, String>;

/// Reads one scenario's options into typed values. Every read records the
/// value used (given or default), so [`Reader::resolved`] is the complete,
/// canonical option set; [`Reader::finish`] refuses keys nobody read.
#[derive(Debug)]
pub struct Reader<'a> {
    scenario: &'static str,
    specs: &'static [OptionSpec],
    given: &'a Options,
    used: RefCell<BTreeSet<String>>,
    resolved: RefCell<Options>,
}

impl<'a> Reader<'a> {
    pub fn new(scenario: &'static str, specs: &'static [OptionSpec], given: &'a Options) -> Self {
        Reader { scenario, specs, given, used: RefCell::default(), resolved: RefCell::default() }
    }

    fn known(&self) -> String {
        self.specs.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
    }

    fn invalid(&self, key: &str, value: &str, detail: String) -> ScenarioError {
        ScenarioError::InvalidOption {
            scenario: self.scenario.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            detail,
            known: self.known(),
        }
    }

    /// The text of `key`: given, or the spec's default.
    fn text(&self, key: &'static str) -> String {
        self.used.borrow_mut().insert(key.to_string());
        let value = match self.given.get(key) {
            Some(v) => v.trim().to_string(),
            None => self.specs.iter().find(|s| s.key == key).map(|s| s.default.to_string()).unwrap_or_default(),
        };
        self.resolved.borrow_mut().insert(key.to_string(), value.clone());
        value
    }

    /// A whole number within `min..=max`.
    pub fn count(&self, key: &'static str, min: u64, max: u64) -> Result<u64, ScenarioError> {
        let v = self.text(key);
        match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(key, &v, format!("expected a whole number from {min} to {max}"))),
        }
    }

    /// A duration within `min..=max` ("10ms", "2s").
    pub fn duration(&self, key: &'static str, min: Duration, max: Duration) -> Result<Duration, ScenarioError> {
        let v = self.text(key);
        match units::parse_duration(&v) {
            Ok(d) if (min..=max).contains(&d) => Ok(d),
            Ok(_) => Err(self.invalid(
                key,
                &v,
                format!("must be from {} to {}", units::format_duration(min), units::format_duration(max)),
            )),
            Err(e) => Err(self.invalid(key, &v, e.to_string())),
        }
    }

    /// A share from 0 to 1 ("0.25", or "25%").
    pub fn share(&self, key: &'static str) -> Result<f64, ScenarioError> {
        let v = self.text(key);
        let parsed = match v.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
            None => v.parse::<f64>(),
        };
        match parsed {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
            _ => Err(self.invalid(key, &v, "expected a share from 0 to 1 (or 0% to 100%)".into())),
        }
    }

    /// A size within `min..=max` ("4KB", "1MB").
    pub fn bytes(&self, key: &'static str, min: u64, max: u64) -> Result<u64, ScenarioError> {
        let v = self.text(key);
        match units::parse_bytes(&v) {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            Ok(_) => Err(self.invalid(
                key,
                &v,
                format!("must be from {} to {}", units::format_bytes(min), units::format_bytes(max)),
            )),
            Err(e) => Err(self.invalid(key, &v, e.to_string())),
        }
    }

    /// A positive rate ("5/s", "300/min").
    pub fn rate(&self, key: &'static str, max: f64) -> Result<f64, ScenarioError> {
        let v = self.text(key);
        match units::parse_rate(&v) {
            Ok(r) if r <= max => Ok(r),
            Ok(_) => Err(self.invalid(key, &v, format!("must be at most {}", units::format_rate(max)))),
            Err(e) => Err(self.invalid(key, &v, e.to_string())),
        }
    }

    /// One of `choices`.
    pub fn choice(&self, key: &'static str, choices: &[&'static str]) -> Result<&'static str, ScenarioError> {
        let v = self.text(key);
        choices
            .iter()
            .find(|c| **c == v)
            .copied()
            .ok_or_else(|| self.invalid(key, &v, format!("expected one of {}", choices.join(", "))))
    }

    /// The raw text of `key` (the caller parses and reports with [`Self::bad`]).
    pub fn raw(&self, key: &'static str) -> String {
        self.text(key)
    }

    /// An error about `key` with value `value`.
    pub fn bad(&self, key: &str, value: &str, detail: impl Into<String>) -> ScenarioError {
        self.invalid(key, value, detail.into())
    }

    /// Take the given keys under `prefix.` (marked read), without the prefix.
    pub fn scoped(&self, prefix: &str) -> Options {
        let lead = format!("{prefix}.");
        let mut out = Options::new();
        for (k, v) in self.given {
            if let Some(rest) = k.strip_prefix(&lead) {
                self.used.borrow_mut().insert(k.clone());
                out.insert(rest.to_string(), v.clone());
            }
        }
        out
    }

    /// Refuse a given key that no read asked for.
    pub fn finish(&self) -> Result<(), ScenarioError> {
        let used = self.used.borrow();
        match self.given.keys().find(|k| !used.contains(*k)) {
            Some(k) => Err(ScenarioError::UnknownOption {
                scenario: self.scenario.to_string(),
                key: k.clone(),
                known: self.known(),
            }),
            None => Ok(()),
        }
    }

    /// Every option read, with the value used.
    pub fn resolved(&self) -> Options {
        self.resolved.borrow().clone()
    }
}

/// Parse `key=value` (from `--set`).
pub fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected key=value, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptionSpec] = &[
        OptionSpec { key: "tasks", default: "5", help: "" },
        OptionSpec { key: "delay", default: "10ms", help: "" },
        OptionSpec { key: "share", default: "0.1", help: "" },
    ];

    fn given(pairs: &[(&str, &str)]) -> Options {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reads_given_values_and_defaults() {
        let g = given(&[("tasks", "7"), ("share", "25%")]);
        let r = Reader::new("x", SPECS, &g);
        assert_eq!(r.count("tasks", 1, 10), Ok(7));
        assert_eq!(r.duration("delay", Duration::ZERO, Duration::from_secs(1)), Ok(Duration::from_millis(10)));
        assert_eq!(r.share("share"), Ok(0.25));
        r.finish().expect("every key read");
        assert_eq!(r.resolved(), given(&[("tasks", "7"), ("delay", "10ms"), ("share", "25%")]));
    }

    #[test]
    fn bad_values_and_unknown_keys_name_the_key_and_the_known_ones() {
        let g = given(&[("tasks", "0")]);
        let r = Reader::new("x", SPECS, &g);
        let e = r.count("tasks", 1, 10).expect_err("zero");
        assert_eq!(
            e.to_string(),
            "scenario x: invalid tasks \"0\": expected a whole number from 1 to 10 (options: tasks, delay, share)"
        );
        let g = given(&[("taks", "3")]);
        let r = Reader::new("x", SPECS, &g);
        r.count("tasks", 1, 10).expect("default");
        let e = r.finish().expect_err("typo");
        assert_eq!(e.to_string(), "scenario x has no option \"taks\" (options: tasks, delay, share)");
        assert!(parse_assignment("a=b").is_ok() && parse_assignment("=b").is_err() && parse_assignment("ab").is_err());
    }
}
