//! The GitHub workflow: valid against GitHub's workflow schema (offline,
//! `check-jsonschema --builtin-schema vendor.github-workflows`), and every
//! coordinator command it runs resolves to a plan (flags, profile, output
//! directories) exactly as it would on the runner's first run, when no
//! results directory exists yet.

use std::process::Command;

use clap::Parser;
use loadgen_coordinator::Cli;
use loadgen_coordinator::cli::resolve;

const WORKFLOW: &str = ".github/workflows/loadgen.yml";

fn root() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/..")
}

#[test]
fn the_workflow_is_valid_against_githubs_schema() {
    let out = Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.github-workflows", WORKFLOW])
        .current_dir(root())
        .output()
        .expect("check-jsonschema runs (the README's test command installs it: pip install check-jsonschema)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok -- validation done"), "{text}");
}

#[test]
fn every_coordinator_step_of_the_workflow_resolves_on_a_first_run() {
    // The steps' commands, from the YAML (PyYAML, installed by the test command).
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; w = yaml.safe_load(open(sys.argv[1])); \
             print(json.dumps([s['run'] for j in w['jobs'].values() for s in j['steps'] if 'run' in s]))",
            WORKFLOW,
        ])
        .current_dir(root())
        .output()
        .expect("python3 with PyYAML");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs: Vec<String> = serde_json::from_slice(&out.stdout).expect("json");
    let commands: Vec<&String> = runs.iter().filter(|r| r.contains("target/release/coordinator")).collect();
    assert!(commands.len() >= 3, "{runs:?}");
    // An empty working directory: results/ does not exist yet.
    let tmp = tempfile::tempdir().expect("tmp");
    std::env::set_current_dir(tmp.path()).expect("cd");
    for run in commands {
        let line = run.replace("${{ matrix.postgres }}", "15");
        let argv: Vec<&str> = line.split_whitespace().collect();
        let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{line}: {e}"));
        let plan = resolve::run_plan(&cli.run).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(!plan.outputs.targets.is_empty() && plan.tracking.track, "{line}");
    }
}
