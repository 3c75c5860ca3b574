//! Patroni's REST API and etcd's health over plain HTTP on loopback: the
//! few requests the cluster needs, each bounded in time.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BOUND: Duration = Duration::from_secs(5);

/// `method path` on 127.0.0.1:`port` with an optional JSON body: the status
/// and the body, or why not.
pub async fn request(port: u16, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String), String> {
    let exchange = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| e.to_string())?;
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
        s.write_all(body.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("no HTTP status")?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok::<_, String>((status, body))
    };
    tokio::time::timeout(BOUND, exchange).await.map_err(|_| format!("no answer within {BOUND:?}"))?
}

/// The members Patroni knows (`GET /cluster`): (name, role, state).
pub async fn members(port: u16) -> Result<Vec<(String, String, String)>, String> {
    let (status, body) = request(port, "GET", "/cluster", None).await?;
    if status != 200 {
        return Err(format!("GET /cluster answered {status}"));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                    (s("name"), s("role"), s("state"))
                })
                .collect()
        })
        .unwrap_or_default())
}
