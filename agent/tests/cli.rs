//! The agent binary's command line: help that teaches, and clear errors.
//! (Also makes `cargo test --workspace` build the `agent` binary that the
//! coordinator's end-to-end tests spawn.)

use std::process::Command;

fn agent() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agent"));
    cmd.env_remove("DATABASE_URL")
        .env_remove("AGENT_LISTEN")
        .env_remove("LOADGEN_TOKEN")
        .env_remove("DUROXIDE_PG_POOL_MAX");
    cmd
}

#[test]
fn help_names_the_settings() {
    let out = agent().arg("--help").output().expect("run agent --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--listen",
        "--database-url",
        "DATABASE_URL",
        "AGENT_LISTEN",
        "--token",
        "LOADGEN_TOKEN",
        "--tls-cert",
        "--run-once",
        "--pool-max",
    ] {
        assert!(help.contains(needle), "help lacks {needle}:\n{help}");
    }
}

#[test]
fn missing_database_url_is_a_clear_error() {
    let out = agent().output().expect("run agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--database-url"), "{err}");
}

#[test]
fn an_address_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let out = agent()
        .args(["--listen", &addr.to_string(), "--database-url", "postgres://u:secret@127.0.0.1:1/db"])
        .env("LOADGEN_TOKEN", "a-token-of-16-chars-or-more")
        .output()
        .expect("run agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(!err.contains("secret"), "password leaked: {err}");
}

#[test]
fn a_missing_token_is_refused_before_listening() {
    let out = agent()
        .args(["--listen", "127.0.0.1:0", "--database-url", "postgres://u:secret@127.0.0.1:1/db"])
        .output()
        .expect("run agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("requires a shared token: set LOADGEN_TOKEN"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"), "it listened without a token");
    assert!(!err.contains("secret"), "password leaked: {err}");
}

#[test]
fn a_short_token_is_refused_before_listening() {
    let out = agent()
        .args(["--listen", "127.0.0.1:0", "--database-url", "postgres://u:secret@127.0.0.1:1/db"])
        .env("LOADGEN_TOKEN", "short")
        .output()
        .expect("run agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("use at least 16"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"), "it listened with a short token");
}

/// Usage errors are one line with exit 2, like the coordinator's: clap's
/// own are four (the error, a tip, the usage, a pointer to --help).
#[test]
fn usage_errors_are_one_line() {
    for args in [&["--bogus"][..], &["--listen", "not-an-address"], &["--pool-max", "many"], &["stray"]] {
        let out = agent().args(args).output().expect("run agent");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("agent: ") && err.contains("(see --help)"), "{args:?}: {err}");
    }
    let help = agent().arg("--help").output().expect("help");
    assert_eq!(help.status.code(), Some(0));
}
