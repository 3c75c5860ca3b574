//! The fault kinds, one file each, and their registry. Adding a kind is a
//! file here (a [`FaultDef`] and a [`super::Fault`]) and its line in
//! [`KINDS`]; nothing else names it (docs/contributing.md has the recipe).

use super::FaultDef;

mod cancel_queries;
mod clock_skew;
mod db_latency;
mod db_partition;
mod failover;
mod freeze_agent;
mod kill_agent;
mod pause_db;
mod relay;
mod restart_db;
mod restart_runtime;
pub mod sqlstate;
mod stall_writes;
mod switchover;
mod terminate_backends;
mod upgrade_agent;

/// Every fault kind, in the order help and docs list them.
pub const KINDS: &[&FaultDef] = &[
    &terminate_backends::DEF,
    &restart_db::DEF,
    &pause_db::DEF,
    &kill_agent::DEF,
    &freeze_agent::DEF,
    &db_latency::DEF,
    &db_partition::DEF,
    &restart_runtime::DEF,
    &cancel_queries::DEF,
    &clock_skew::DEF,
    &stall_writes::DEF,
    &sqlstate::DEF,
    &upgrade_agent::DEF,
    &switchover::DEF,
    &failover::DEF,
];

/// The kind called `name`.
pub fn find(name: &str) -> Option<&'static FaultDef> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// Run `statements` in one transaction (the kinds that change the run's
/// schema for a while, and undo it).
async fn in_one_transaction(pool: &sqlx::PgPool, statements: &[String]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for s in statements {
        sqlx::query(s).execute(&mut *tx).await?;
    }
    tx.commit().await
}
