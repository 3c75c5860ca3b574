//! Commands that set runs side by side or step them: A/B between builds, the bench against the stress module, the capacity sweep, providers compared, the stress profiles users know.
//!
//! One test binary per capability; each module below was a binary of its own.

#[path = "../support/mod.rs"]
mod support;

mod ab;
mod bench;
mod providers;
mod stress_profiles;
mod sweep;
