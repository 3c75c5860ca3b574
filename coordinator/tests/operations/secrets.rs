//! Hostile input: a password in every form a user may give one (a URL, a
//! URL with unencoded `/`, `?` or `#`, a query parameter, libpq's key=value
//! string, a URL without its scheme, broken ones) and in every place (the
//! flag, `DATABASE_URL`, a bare argument, a misplaced value), across every
//! subcommand and the agent. Each is refused or fails with one line and a
//! non-zero exit, and the password appears in no output and no file.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{agent_bin, all_text_under, coordinator, show};

const SECRET: &str = "Zq8Hostile";
/// A token of the right length, a secret too.
const TOKEN: &str = "Zq8Hostile-token-0123";

/// Connection strings holding [`SECRET`], all pointing at a closed port.
fn urls() -> Vec<String> {
    [
        "postgres://u:{S}@127.0.0.1:1/db",
        "postgresql://u:{S}/x@127.0.0.1:1/db",
        "postgres://u:{S}#x@127.0.0.1:1/db",
        "postgres://u:{S}?x@127.0.0.1:1/db?sslmode=disable",
        "postgres://127.0.0.1:1/db?user=u&password={S}",
        "host=127.0.0.1 port=1 user=u password={S} dbname=db",
        "host=127.0.0.1 port=1 password='{S} with space'",
        "host=127.0.0.1 password='{S} unclosed",
        "mysql://u:{S}@127.0.0.1/db",
        "u:{S}@127.0.0.1:1/db",
        "postgres://u:{S}@127.0.0.1:notaport/db",
        "host=127.0.0.1 port=x password={S}",
    ]
    .iter()
    .map(|u| u.replace("{S}", SECRET))
    .collect()
}

/// One hostile try: the binary, its arguments and environment.
struct Try {
    label: String,
    agent: bool,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
}

fn tries(tmp: &Path) -> Vec<Try> {
    let outputs = |name: &str| -> Vec<String> {
        let f = |ext: &str| tmp.join(format!("{name}.{ext}")).display().to_string();
        vec![
            "--json".into(),
            f("json"),
            "--report".into(),
            f("html"),
            "--output".into(),
            format!("markdown={}", f("md")),
            "--output".into(),
            format!("junit={}", f("xml")),
            "--hlog-dir".into(),
            tmp.join(format!("{name}-hlog")).display().to_string(),
        ]
    };
    let c = |label: String, args: Vec<String>| Try { label, agent: false, args, env: vec![] };
    let mut all = Vec::new();
    for (i, url) in urls().into_iter().enumerate() {
        let mut args: Vec<String> = ["--local", "1", "--duration", "1s", "--database-url"].map(String::from).into();
        args.push(url.clone());
        args.extend(outputs(&format!("run{i}")));
        all.push(c(format!("run --database-url {i}"), args));
    }
    let u = urls();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let env_run = |label: &str, url: &str| Try {
        label: label.into(),
        agent: false,
        args: s(&["--local", "1", "--duration", "1s"]),
        env: vec![("DATABASE_URL", url.to_string())],
    };
    all.push(env_run("run with DATABASE_URL key=value", &u[5]));
    all.push(Try {
        label: "a URL in LOADGEN_PROFILE".into(),
        agent: false,
        args: s(&["--local", "1"]),
        env: vec![("LOADGEN_PROFILE", u[0].clone())],
    });
    all.push(env_run("run with DATABASE_URL unencoded /", &u[1]));
    all.push(c("a URL as a bare argument".into(), vec![u[0].clone()]));
    all.push(c("key=value as a bare argument".into(), vec![u[5].clone()]));
    all.push(c("a URL as --local's value".into(), vec!["--local".into(), u[0].clone()]));
    all.push(c("a misspelt flag before a URL".into(), vec!["--databse-url".into(), u[0].clone()]));
    all.push(c("a URL after --".into(), vec!["--local".into(), "1".into(), "--".into(), u[0].clone()]));
    for (label, url) in [("audit key=value", &u[5]), ("audit unencoded #", &u[2]), ("audit query password", &u[4])] {
        all.push(c(
            label.into(),
            vec!["audit".into(), "--schema".into(), "loadgen_x".into(), "--database-url".into(), url.clone()],
        ));
    }
    all.push(c(
        "audit with a bare URL".into(),
        vec!["audit".into(), "--schema".into(), "loadgen_x".into(), u[0].clone()],
    ));
    all.push(c("cleanup URL".into(), vec!["cleanup".into(), "--all".into(), "--database-url".into(), u[0].clone()]));
    all.push(c("cleanup unclosed quote".into(), vec!["cleanup".into(), "--database-url".into(), u[7].clone()]));
    all.push(c("bench key=value".into(), vec!["bench".into(), "--database-url".into(), u[5].clone()]));
    all.push(c("sweep URL".into(), s(&["sweep", "--local", "1", "--slo-p99", "1s", "--database-url", &u[0]])));
    all.push(c("compare URL".into(), s(&["compare", "--local", "1", "--database-url", &u[3]])));
    all.push(c(
        "ab URL".into(),
        s(&["ab", "--local", "1", "--baseline-agent", "/x", "--candidate-agent", "/y", "--database-url", &u[9]]),
    ));
    all.push(c("profiles with a URL".into(), vec!["profiles".into(), u[0].clone()]));
    all.push(c("a short token".into(), s(&["--local", "1", "--token", &SECRET[..10]])));
    all.push(c(
        "a token to an absent agent".into(),
        s(&["--agents", "127.0.0.1:1", "--database-url", &u[0], "--token", TOKEN]),
    ));
    let a = |label: &str, args: Vec<String>, env: Vec<(&'static str, String)>| Try {
        label: label.into(),
        agent: true,
        args,
        env,
    };
    all.push(a("agent with a bare URL", vec![u[0].clone()], vec![]));
    all.push(a(
        "agent DATABASE_URL unencoded ?",
        vec![],
        vec![("DATABASE_URL", u[3].clone()), ("LOADGEN_TOKEN", TOKEN.into())],
    ));
    all.push(a("agent key=value with a short token", s(&["--database-url", &u[5], "--token", "short"]), vec![]));
    all.push(a("agent broken key=value", s(&["--database-url", &u[11], "--token", TOKEN]), vec![]));
    all.push(a("agent without a scheme", s(&["--database-url", &u[9], "--token", TOKEN]), vec![]));
    all
}

fn run(t: &Try, tmp: &Path) -> Output {
    let mut cmd = if t.agent {
        let mut cmd = Command::new(agent_bin());
        cmd.env("TMPDIR", tmp)
            .env_remove("DATABASE_URL")
            .env_remove("LOADGEN_TOKEN")
            .arg("--listen")
            .arg("127.0.0.1:0");
        cmd
    } else {
        coordinator(tmp)
    };
    cmd.current_dir(tmp).args(&t.args).envs(t.env.iter().map(|(k, v)| (k, v)));
    cmd.output().expect("spawn")
}

#[test]
fn no_form_of_a_password_is_ever_printed_or_written() {
    let tmp = tempfile::tempdir().expect("tmp");
    let tries = tries(tmp.path());
    assert_eq!(tries.len(), 38, "the docs count the tries (guarantees.md, testing.md)");
    for t in &tries {
        let out = run(t, tmp.path());
        let text = show(&out);
        assert_ne!(out.status.code(), Some(0), "{}: {text}", t.label);
        assert!(!text.contains(SECRET), "{}: the secret was printed: {text}", t.label);
        let errors: Vec<&str> = std::str::from_utf8(&out.stderr)
            .expect("utf-8")
            .lines()
            .filter(|l| l.starts_with("coordinator: ") || l.starts_with("agent: "))
            .collect();
        assert_eq!(errors.len(), 1, "{}: one error line: {text}", t.label);
        assert!(!errors[0].contains('\t') && errors[0].len() < 600, "{}: {}", t.label, errors[0]);
    }
    for (path, text) in all_text_under(tmp.path()) {
        assert!(!text.contains(SECRET), "the secret is in {path}");
    }
}

/// A key=value connection string works as libpq users write it: a whole run
/// on a server that checks the password (with a space and a quote in it),
/// and the password in no output or file.
#[test]
fn a_key_value_connection_string_runs_and_is_never_printed() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let password = format!("{SECRET} it's");
    let mut pg = rt
        .block_on(loadgen_coordinator::db::embedded::EmbeddedPostgres::start_with_password(&password))
        .expect("postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let conninfo = format!("host=127.0.0.1 port={} user=loadgen password='{SECRET} it\\'s' dbname=postgres", pg.port());
    let json = tmp.path().join("run.json");
    let out = coordinator(tmp.path())
        .args(["--local", "1", "--duration", "2s", "--log", "debug", "--database-url", &conninfo, "--json"])
        .arg(&json)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", show(&out));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("parse");
    assert_eq!(report["database"], format!("postgres://loadgen:***@127.0.0.1:{}/postgres", pg.port()), "{report:#}");
    assert!(!show(&out).contains(SECRET), "{}", show(&out));
    for (path, text) in all_text_under(tmp.path()) {
        assert!(!text.contains(SECRET), "the secret is in {path}");
    }
    // The wrong password is refused: the string's password is the one used.
    let wrong = conninfo.replace(SECRET, "Nope");
    let out = coordinator(tmp.path()).args(["--local", "1", "--database-url", &wrong]).output().expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("password authentication failed"), "{}", show(&out));
    pg.stop();
}
