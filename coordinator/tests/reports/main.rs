//! What a run leaves for people and tools: the HTML report (its markup, and Chromium drawing it) and the GitHub workflow.
//!
//! One test binary per capability; each module below was a binary of its own.

#[path = "../support/mod.rs"]
mod support;

mod browser;
mod docs;
mod html_report;
mod workflow;
