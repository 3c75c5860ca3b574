//! A high-availability Postgres on loopback (etcd, Patroni, HAProxy): the
//! cluster comes up writable through one endpoint, survives a planned
//! switchover and a failover, and leaves nothing behind.

#[path = "../support/mod.rs"]
mod support;

mod cleanup;
mod cluster;
mod run;
