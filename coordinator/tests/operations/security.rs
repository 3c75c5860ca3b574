//! Security with real processes: the agent token, TLS, a second coordinator,
//! protocol mismatch, hostile schema names, and passwords kept out of every
//! log line, report and file.

use crate::support;

use std::path::Path;
use std::process::Command;

use crate::support::{all_text_under, coordinator, show, spawn_agent, spawn_agent_logging};
use loadgen_coordinator::db::embedded::EmbeddedPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_logged() {
    let pg = EmbeddedPostgres::start().await.expect("postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let log = tmp.path().join("agent.log");
    let agent = spawn_agent_logging(pg.url(), &[], Some(&log));
    let out = coordinator(tmp.path())
        .args(["--agents", &agent.address, "--database-url", pg.url(), "--token", "not-the-agents-token-0123"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused our token"), "{}", show(&out));
    let logged = std::fs::read_to_string(&log).expect("agent log");
    assert!(logged.contains("refused a request without the right agent token"), "{logged}");
    assert!(!logged.contains("not-the-agents-token-0123"), "the agent logged the offered token");
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_over_tls_with_the_agents_ca_and_refuses_plain_text() {
    let pg = EmbeddedPostgres::start().await.expect("postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    // A CA, and an agent certificate it signs for 127.0.0.1 and localhost.
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=loadgen test CA",
        ],
        d,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "agent.key",
            "-out",
            "agent.csr",
            "-subj",
            "/CN=localhost",
        ],
        d,
    );
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "agent.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "agent.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
        d,
    );
    let cert = d.join("agent.pem").display().to_string();
    let key = d.join("agent.key").display().to_string();
    let agent = spawn_agent(pg.url(), &["--tls-cert", &cert, "--tls-key", &key]);
    let ca = d.join("ca.pem").display().to_string();
    let json = d.join("tls.json").display().to_string();
    let out = coordinator(d)
        .args([
            "--agents",
            &agent.address,
            "--database-url",
            pg.url(),
            "--tls-ca",
            &ca,
            "--duration",
            "2s",
            "--json",
            &json,
        ])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", show(&out));
    support::assert_consistent(&support::read_report(json.as_ref()), 1);
    // Plain HTTP/2 to a TLS agent fails cleanly.
    let out = coordinator(d).args(["--agents", &agent.address, "--database-url", pg.url()]).output().expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1, "{}", show(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_coordinator_cannot_drive_a_busy_agent() {
    let pg = EmbeddedPostgres::start().await.expect("postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let agent = spawn_agent(pg.url(), &[]);
    let first = coordinator(tmp.path())
        .args(["--agents", &agent.address, "--database-url", pg.url(), "--duration", "8s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("first coordinator");
    // Wait until the agent is busy with the first run.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let out = coordinator(tmp.path())
        .args(["--agents", &agent.address, "--database-url", pg.url()])
        .output()
        .expect("second coordinator");
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is busy") && err.contains("another coordinator"), "{err}");
    let first = first.wait_with_output().expect("first finishes");
    assert!(first.status.success(), "the first run was disturbed: {:?}", first.status);
}

/// An agent that speaks another protocol revision.
mod foreign {
    use loadgen_common::proto::agent_server::{Agent, AgentServer};
    use loadgen_common::proto::*;
    use tonic::{Request, Response, Status, Streaming};

    pub struct Foreign {
        pub protocol: u32,
        pub duroxide_pg: String,
    }

    #[tonic::async_trait]
    impl Agent for Foreign {
        async fn hello(&self, _: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
            Ok(Response::new(HelloReply {
                protocol_version: self.protocol,
                duroxide_pg_version: self.duroxide_pg.clone(),
                state: AgentState::Idle as i32,
                ..Default::default()
            }))
        }
        async fn prepare(&self, _: Request<PrepareRequest>) -> Result<Response<PrepareReply>, Status> {
            Err(Status::unimplemented("foreign"))
        }
        type RunStream = tokio_stream::Empty<Result<RunEvent, Status>>;
        async fn run(&self, _: Request<Streaming<RunControl>>) -> Result<Response<Self::RunStream>, Status> {
            Err(Status::unimplemented("foreign"))
        }
        async fn release(&self, _: Request<ReleaseRequest>) -> Result<Response<ReleaseReply>, Status> {
            Err(Status::unimplemented("foreign"))
        }
        type InspectStream = tokio_stream::Empty<Result<InspectChunk, Status>>;
        async fn inspect(&self, _: Request<InspectRequest>) -> Result<Response<Self::InspectStream>, Status> {
            Err(Status::unimplemented("foreign"))
        }
    }

    pub async fn serve(protocol: u32, duroxide_pg: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AgentServer::new(Foreign { protocol, duroxide_pg: duroxide_pg.to_string() }))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_mismatch_and_a_hostile_schema_are_refused_with_one_line() {
    let pg = EmbeddedPostgres::start().await.expect("postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    let cases = [
        (99, loadgen_common::DUROXIDE_PG_VERSION, "speaks protocol revision 99"),
        (loadgen_common::proto::PROTOCOL_VERSION, "0.0.1", "runs duroxide-pg 0.0.1"),
    ];
    for (protocol, version, needle) in cases {
        let addr = foreign::serve(protocol, version).await;
        let out = tokio::task::spawn_blocking({
            let (url, dir) = (pg.url().to_string(), tmp.path().to_path_buf());
            move || coordinator(&dir).args(["--agents", &addr, "--database-url", &url]).output().expect("run")
        })
        .await
        .expect("join");
        assert_eq!(out.status.code(), Some(3), "{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    for hostile in ["x; DROP SCHEMA public CASCADE", "public", "a\"b", ""] {
        let out = coordinator(tmp.path())
            .args(["audit", "--schema", hostile, "--database-url", pg.url()])
            .output()
            .expect("run audit");
        assert_eq!(out.status.code(), Some(2), "{hostile:?}: {}", show(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid schema name"), "{}", show(&out));
    }
}

/// Every file under `dir`, recursively, as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_appears_in_any_output_or_file() {
    let pg = EmbeddedPostgres::start().await.expect("postgres");
    let tmp = tempfile::tempdir().expect("tmp");
    const PASSWORD: &str = "Zq8-very-secret-pw";
    // Trust authentication accepts any password, so the run works with it in the URL.
    let url = format!("postgres://loadgen:{PASSWORD}@127.0.0.1:{}/postgres", pg.port());
    let results = tmp.path().join("results");
    let json = tmp.path().join("out.json");
    let out = coordinator(tmp.path())
        .args(["--local", "2", "--duration", "2s", "--database-url", &url, "--track", "--log", "debug"])
        .arg("--results-dir")
        .arg(&results)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", show(&out));
    let mut texts = vec![
        ("stdout".to_string(), String::from_utf8_lossy(&out.stdout).into_owned()),
        ("stderr (coordinator and agents, debug logs)".to_string(), String::from_utf8_lossy(&out.stderr).into_owned()),
    ];
    texts.extend(all_text_under(tmp.path()));
    assert!(texts.iter().any(|(_, t)| t.contains("postgres://loadgen:***@")), "the masked URL should appear somewhere");
    // A failing run must not leak it either.
    let bad = format!("postgres://loadgen:{PASSWORD}@127.0.0.1:1/postgres");
    let failed = coordinator(tmp.path()).args(["--local", "1", "--database-url", &bad]).output().expect("run");
    assert_eq!(failed.status.code(), Some(3));
    texts.push((
        "failed run".into(),
        format!("{}{}", String::from_utf8_lossy(&failed.stdout), String::from_utf8_lossy(&failed.stderr)),
    ));
    let audit = coordinator(tmp.path())
        .args(["audit", "--schema", "loadgen_x", "--database-url", &bad])
        .output()
        .expect("audit");
    texts.push(("failed audit".into(), String::from_utf8_lossy(&audit.stderr).into_owned()));
    for (name, text) in &texts {
        assert!(!text.contains(PASSWORD), "the password appears in {name}");
    }
    assert!(
        texts.len() >= 6,
        "expected the JSON, history and markdown files too: {:?}",
        texts.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
}
