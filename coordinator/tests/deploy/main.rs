//! Deployment: the manifests and Dockerfile, the container image built and run, a multi-host run in network namespaces.
//!
//! One test binary per capability; each module below was a binary of its own.

#[path = "../support/mod.rs"]
mod support;

mod files;
mod image;
mod multihost;
