//! The JUnit XML renderer (`--output junit=FILE`): each run is a test suite
//! and each must-pass gate a test case, failed when the gate failed, so a CI
//! system that reads JUnit (GitHub, GitLab, Jenkins) shows which gate broke
//! and by how much without parsing the JSON. A sweep adds one case for the
//! sweep's own verdict.

use std::io::{self, Write};

use super::{Document, Renderer};
use crate::model::{Gate, RunReport, SweepReport};

/// JUnit XML for CI systems.
#[derive(Debug)]
pub struct Junit;

impl Renderer for Junit {
    fn name(&self) -> &'static str {
        "junit"
    }

    fn supports(&self, doc: &Document<'_>) -> bool {
        matches!(doc, Document::Run(_) | Document::Suite { .. } | Document::Sweep { .. })
    }

    fn render(&self, doc: &Document<'_>, w: &mut dyn Write) -> io::Result<()> {
        let (runs, sweep): (&[RunReport], Option<&SweepReport>) = match doc {
            Document::Run(r) => (std::slice::from_ref(*r), None),
            Document::Suite { runs, .. } => (runs, None),
            Document::Sweep { sweep, runs } => (runs, Some(sweep)),
            _ => return Err(io::Error::other("junit renders runs, suites and sweeps")),
        };
        let cases: usize = runs.iter().map(|r| r.gates.len()).sum::<usize>() + usize::from(sweep.is_some());
        let failures = runs.iter().flat_map(|r| &r.gates).filter(|g| !g.passed).count()
            + usize::from(sweep.is_some_and(|s| !s.passed));
        writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        writeln!(w, r#"<testsuites name="loadgen" tests="{cases}" failures="{failures}">"#)?;
        for r in runs {
            suite(r, w)?;
        }
        if let Some(s) = sweep {
            writeln!(w, r#"  <testsuite name="sweep" tests="1" failures="{}">"#, usize::from(!s.passed))?;
            let verdict = Gate {
                name: "sweep".into(),
                limit: "every step audited clean, no agent lost".into(),
                value: if s.problems.is_empty() { "passed".into() } else { s.problems.join("; ") },
                passed: s.passed,
            };
            case("sweep", &verdict, w)?;
            writeln!(w, "  </testsuite>")?;
        }
        writeln!(w, "</testsuites>")
    }
}

fn suite(r: &RunReport, w: &mut dyn Write) -> io::Result<()> {
    let name = format!("{} {} ({})", r.profile.name, r.profile.dispatchers, r.run_id);
    let failures = r.gates.iter().filter(|g| !g.passed).count();
    writeln!(
        w,
        r#"  <testsuite name="{}" tests="{}" failures="{failures}" time="{:.3}" timestamp="{}">"#,
        xml(&name),
        r.gates.len(),
        r.merged.elapsed_s,
        xml(&r.started_at)
    )?;
    for g in &r.gates {
        case(&format!("loadgen.{}", r.profile.name), g, w)?;
    }
    writeln!(w, "  </testsuite>")
}

fn case(class: &str, g: &Gate, w: &mut dyn Write) -> io::Result<()> {
    let (name, class) = (xml(&g.name), xml(class));
    if g.passed {
        return writeln!(w, r#"    <testcase classname="{class}" name="{name}"/>"#);
    }
    writeln!(w, r#"    <testcase classname="{class}" name="{name}">"#)?;
    let message = format!("{} (limit {})", g.value, g.limit);
    writeln!(w, r#"      <failure message="{}">{}</failure>"#, xml(&message), xml(&message))?;
    writeln!(w, "    </testcase>")
}

/// Text escaped for XML content and attributes; characters XML 1.0 cannot
/// hold (most control characters) become spaces.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(name: &str, passed: bool) -> Gate {
        Gate { name: name.into(), limit: "0".into(), value: if passed { "0" } else { "3 <lost>" }.into(), passed }
    }

    #[test]
    fn each_gate_is_a_case_and_a_failed_gate_a_failure() {
        let mut r = RunReport { run_id: "ab12".into(), ..Default::default() };
        r.profile.name = "light".into();
        r.gates = vec![gate("success rate", true), gate("start errors", false)];
        let mut out = Vec::new();
        Junit.render(&Document::Run(&r), &mut out).expect("render");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains(r#"<testsuites name="loadgen" tests="2" failures="1">"#), "{text}");
        assert!(text.contains(r#"<testcase classname="loadgen.light" name="success rate"/>"#), "{text}");
        assert!(text.contains(r#"<failure message="3 &lt;lost&gt; (limit 0)">"#), "{text}");
        assert_eq!(text.matches("<testcase ").count(), 2);
        assert_eq!(xml("a\u{1}b'"), "a b&apos;");
    }
}
