//! The shared agent token: every call to an agent carries
//! `authorization: Bearer <token>`; an agent refuses (and logs) any call
//! without the right one. The check lives in interceptors, not in handlers.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::proto::AUTH_HEADER;

/// A random token for agents the coordinator spawns itself (`--local`).
pub fn new_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Check a token is usable in a header.
pub fn validate_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the agent token is empty".into());
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err("the agent token must be printable ASCII without spaces".into());
    }
    Ok(())
}

/// Shortest token an agent accepts: the token is all that stands between the
/// network and a process that can load the database.
pub const MIN_AGENT_TOKEN_LEN: usize = 16;

/// The agent's stricter check of the token it will require.
pub fn validate_agent_token(token: &str) -> Result<(), String> {
    validate_token(token)?;
    if token.len() < MIN_AGENT_TOKEN_LEN {
        return Err(format!(
            "the agent token is {} characters; use at least {MIN_AGENT_TOKEN_LEN} (e.g. openssl rand -hex 24)",
            token.len()
        ));
    }
    Ok(())
}

fn bearer(token: &str) -> Result<MetadataValue<Ascii>, String> {
    validate_token(token)?;
    format!("Bearer {token}").parse().map_err(|_| "the agent token is not a valid header value".to_string())
}

/// Client side: adds the token to every request.
#[derive(Clone, Debug)]
pub struct AddToken {
    value: MetadataValue<Ascii>,
}

impl AddToken {
    pub fn new(token: &str) -> Result<Self, String> {
        Ok(AddToken { value: bearer(token)? })
    }
}

impl Interceptor for AddToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert(AUTH_HEADER, self.value.clone());
        Ok(req)
    }
}

/// Server side: refuses requests without the token.
#[derive(Clone, Debug)]
pub struct RequireToken {
    expected: Vec<u8>,
}

impl RequireToken {
    pub fn new(token: &str) -> Result<Self, String> {
        Ok(RequireToken { expected: bearer(token)?.as_bytes().to_vec() })
    }
}

/// Compare without an early exit, so timing does not reveal a prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Interceptor for RequireToken {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let given = req.metadata().get(AUTH_HEADER).map(|v| v.as_bytes());
        if given.is_some_and(|g| same(g, &self.expected)) {
            return Ok(req);
        }
        let peer = req.remote_addr().map_or("unknown peer".to_string(), |a| a.to_string());
        tracing::warn!(%peer, token_given = given.is_some(), "refused a request without the right agent token");
        Err(Status::unauthenticated("missing or wrong agent token (LOADGEN_TOKEN)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_token_passes_and_others_are_refused() {
        let mut add = AddToken::new("s3cret-token").expect("token");
        let mut require = RequireToken::new("s3cret-token").expect("token");
        let req = add.call(Request::new(())).expect("add");
        assert!(require.call(req).is_ok());
        let mut wrong = AddToken::new("s3cret-tokem").expect("token");
        let refused = require.call(wrong.call(Request::new(())).expect("add")).expect_err("wrong token");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(require.call(Request::new(())).is_err(), "no token");
        assert!(validate_token("").is_err() && validate_token("has space").is_err());
        assert!(validate_agent_token("short-token").is_err());
        assert!(validate_agent_token("0123456789abcdef").is_ok());
        assert_ne!(new_token(), new_token());
        assert!(new_token().len() >= 32);
    }
}
