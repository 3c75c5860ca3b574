//! The docs checked against the code: every `coordinator ...` and `agent
//! ...` command line in README.md, deploy/README.md and docs/ uses a
//! subcommand and flags the binaries have; every flag written alone in code
//! is one of theirs; every `LOADGEN_*` variable is read somewhere; the fault
//! kinds and their fields in `--help` and docs/faults.md are the registry's;
//! and the files the architecture's tables name exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use loadgen_coordinator::Cli;
use loadgen_coordinator::faults::kinds::KINDS;

use crate::support::agent_bin;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

/// The documents a user reads, as (name, text).
fn documents() -> Vec<(String, String)> {
    let mut paths = vec![root().join("README.md"), root().join("deploy/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            (p.strip_prefix(root()).unwrap_or(&p).display().to_string(), std::fs::read_to_string(&p).expect("doc"))
        })
        .collect()
}

/// The code in a document: each line of a fenced block (continuation lines
/// joined), and each inline `span`.
fn code(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            match line.trim_end().strip_suffix('\\') {
                Some(head) => pending.push_str(head),
                None => {
                    pending.push_str(line);
                    out.push(std::mem::take(&mut pending));
                }
            }
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(span), Some(_)) = (parts.next(), parts.next()) {
            out.push(span.to_string());
        }
    }
    out
}

/// Shell words, quotes stripped (good enough for documentation lines).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Long flags (with aliases) of a clap command.
fn longs(cmd: &clap::Command) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = ["--help".to_string(), "--version".to_string()].into();
    for a in cmd.get_arguments() {
        s.extend(a.get_long().map(|l| format!("--{l}")));
        s.extend(a.get_all_aliases().unwrap_or_default().into_iter().map(|l| format!("--{l}")));
    }
    s
}

/// The agent's long flags and variables, from its --help.
fn agent_surface() -> (BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(agent_bin()).arg("--help").output().expect("agent --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let flags = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap_or(w).trim_end_matches(|c: char| !c.is_alphanumeric()).to_string())
        .collect();
    let vars = help.split("[env: ").skip(1).filter_map(|s| s.split([']', '=']).next()).map(str::to_string).collect();
    (flags, vars)
}

/// A coordinator or agent command line in a code line: the binary's name
/// as a word (also as a path, after `cargo run ... --`), and the words after
/// it up to a shell operator.
fn command_lines(line: &str) -> Vec<(&'static str, Vec<String>)> {
    let w = words(line);
    let mut out = Vec::new();
    for (i, word) in w.iter().enumerate() {
        let base = word.rsplit('/').next().unwrap_or(word);
        let bin = match base {
            "coordinator" => "coordinator",
            "agent" => "agent",
            _ => continue,
        };
        // A command where a command can be: first, after variables, after
        // `cargo run ... --`, an operator or a wrapper; not a flag's value.
        let starts = match i.checked_sub(1).map(|p| w[p].as_str()) {
            None => true,
            Some(prev) => {
                (prev.contains('=') && !prev.starts_with('-'))
                    || matches!(prev, "--" | "|" | "&&" | ";" | "exec" | "sudo" | "time" | "$" | "run")
            }
        };
        if !starts {
            continue;
        }
        let rest: Vec<String> = w[i + 1..]
            .iter()
            .take_while(|x| !matches!(x.as_str(), "|" | "||" | "&&" | ";" | ">" | "2>&1" | "#" | "&" | "\\"))
            .cloned()
            .collect();
        out.push((bin, rest));
    }
    out
}

/// Flags of other tools the docs name alone (cargo's, for patching a provider in).
const OTHER_TOOLS_FLAGS: &[&str] = &["--config", "--bench"];

#[test]
fn every_documented_command_subcommand_flag_and_variable_exists() {
    let cli = Cli::command();
    let top = longs(&cli);
    let subs: Vec<(String, BTreeSet<String>)> =
        cli.get_subcommands().map(|s| (s.get_name().to_string(), longs(s))).collect();
    let (agent_flags, agent_vars) = agent_surface();
    let mut every_flag: BTreeSet<String> = top.clone();
    every_flag.extend(subs.iter().flat_map(|s| s.1.iter().cloned()));
    every_flag.extend(agent_flags.iter().cloned());
    let mut problems = Vec::new();
    let mut checked = 0;
    for (doc, text) in documents() {
        for line in code(&text) {
            // A flag written alone is one of the binaries'.
            let t = line.trim();
            if t.starts_with("--") && t.len() > 2 {
                let first = t.split_whitespace().next().unwrap_or(t);
                let flag = first.split(['=', '[']).next().unwrap_or(first).to_string();
                if !every_flag.contains(&flag) && !OTHER_TOOLS_FLAGS.contains(&flag.as_str()) {
                    problems.push(format!("{doc}: `{t}` is no flag of the coordinator or the agent"));
                }
                checked += 1;
            }
            for (bin, rest) in command_lines(&line) {
                let (known, what) = if bin == "agent" {
                    (&agent_flags, "agent".to_string())
                } else {
                    match rest.first().filter(|f| !f.starts_with('-')) {
                        Some(sub) if !sub.starts_with('<') && !sub.starts_with('[') && !sub.starts_with("...") => {
                            match subs.iter().find(|s| &s.0 == sub) {
                                Some((name, flags)) => (flags, format!("coordinator {name}")),
                                // Prose and output ("the coordinator starts...") are not commands.
                                None if line.contains("--") || sub.chars().all(|c| c.is_ascii_lowercase()) => {
                                    if rest.iter().any(|r| r.starts_with("--")) {
                                        problems
                                            .push(format!("{doc}: `coordinator {sub}`: no such subcommand ({line})"));
                                    }
                                    continue;
                                }
                                None => continue,
                            }
                        }
                        _ => (&top, "coordinator".to_string()),
                    }
                };
                for flag in rest.iter().filter(|r| r.starts_with("--") && r.len() > 2).flat_map(|r| r.split('/')) {
                    let flag = flag.split('=').next().unwrap_or(flag);
                    checked += 1;
                    if !known.contains(flag) {
                        problems.push(format!("{doc}: `{what}` has no {flag} ({line})"));
                    }
                }
            }
        }
    }
    // Variables: a clap setting of either binary, or read by the code or scripts.
    let mut vars: BTreeSet<String> = agent_vars;
    for c in std::iter::once(&cli).chain(cli.get_subcommands()) {
        for a in c.get_arguments() {
            vars.extend(a.get_env().and_then(|e| e.to_str()).map(str::to_string));
        }
    }
    let read = source_literals("LOADGEN_");
    for (doc, text) in documents() {
        for var in text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("LOADGEN_") && w.len() > 8)
        {
            checked += 1;
            if !vars.contains(var) && !read.contains(var) {
                problems.push(format!("{doc}: {var} is read by nothing"));
            }
        }
    }
    assert!(checked > 200, "only {checked} flags and variables found in the docs: the extraction broke");
    assert!(problems.is_empty(), "{} mismatch(es):\n{}", problems.len(), problems.join("\n"));
}

/// Every `PREFIX...` identifier written as a literal in the sources and scripts.
fn source_literals(prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack =
        ["coordinator", "agent", "common", "scenarios", "scripts", ".ci", "deploy"].map(|d| root().join(d)).to_vec();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).expect("dir").flatten().map(|e| e.path()));
        } else if let Ok(text) = std::fs::read_to_string(&p) {
            found.extend(
                text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with(prefix) && w.len() > prefix.len())
                    .map(str::to_string),
            );
        }
    }
    found
}

#[test]
fn fault_kinds_and_fields_in_help_and_docs_are_the_registry() {
    let help = Command::new(env!("CARGO_BIN_EXE_coordinator")).arg("--help").output().expect("--help");
    let help = String::from_utf8_lossy(&help.stdout);
    let listing = Command::new(env!("CARGO_BIN_EXE_coordinator")).arg("faults").output().expect("faults");
    let listing = String::from_utf8_lossy(&listing.stdout);
    let faults_md = std::fs::read_to_string(root().join("docs/faults.md")).expect("faults.md");
    let mut table: Vec<&str> = faults_md
        .lines()
        .skip_while(|l| !l.starts_with("| kind |"))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect();
    let mut names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
    table.sort_unstable();
    names.sort_unstable();
    assert_eq!(table, names, "docs/faults.md's table of kinds against the registry");
    for k in KINDS {
        assert!(
            help.contains(k.name) && listing.contains(k.name),
            "{} missing from --help or `coordinator faults`",
            k.name
        );
        for (field, _) in k.fields {
            assert!(listing.contains(field), "{}'s field {field} missing from `coordinator faults`", k.name);
            assert!(
                faults_md.contains(&format!("`{field}`")),
                "{}'s field `{field}` undocumented in docs/faults.md",
                k.name
            );
        }
    }
}

#[test]
fn the_architecture_tables_name_files_that_exist_and_every_file_is_named() {
    let arch = std::fs::read_to_string(root().join("docs/architecture.md")).expect("architecture.md");
    assert!(arch.contains("### common/src\n"), "the common/src table moved: update this test");
    for dir in ["common/src", "coordinator/src/model"] {
        let entries: Vec<String> = std::fs::read_dir(root().join(dir))
            .expect("dir")
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() { format!("{name}/") } else { name }
            })
            .filter(|n| n != "lib.rs" && n != "mod.rs")
            .collect();
        for e in &entries {
            assert!(arch.contains(&format!("`{e}`")), "docs/architecture.md does not name {dir}/{e}");
        }
        // And names none that is gone: a `x.rs` in the table's rows must exist.
        let Some(section) = arch.split(&format!("### {dir}\n")).nth(1) else { continue };
        for row in section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')) {
            if let Some(name) = row.strip_prefix("| `").and_then(|r| r.split('`').next())
                && (name.ends_with(".rs") || name.ends_with('/'))
            {
                assert!(entries.contains(&name.to_string()), "docs/architecture.md names {dir}/{name}, which is gone");
            }
        }
    }
}
