//! Operating it safely: tokens, TLS and secrets kept out of every output; leftover schemas found and dropped.
//!
//! One test binary per capability; each module below was a binary of its own.

#[path = "../support/mod.rs"]
mod support;

mod cleanup;
mod secrets;
mod security;
