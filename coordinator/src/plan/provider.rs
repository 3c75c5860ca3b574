//! The duroxide providers a run can drive, one registry entry each. The
//! commands ask the entry, never the provider's name: where the store lives
//! (a Postgres schema, or in the agent process), how reports name it,
//! whether the bench can measure the generator on it, and what `compare`
//! measures against what.
//!
//! Adding a provider: a variant of [`ProviderKind`], its entry in
//! [`PROVIDERS`], its wire value (`agents/calls.rs`, the proto enum) and
//! the agent's store for it (`Store` in `agent/src/plan.rs`, read off the wire in
//! `agent/src/wire.rs`, opened in `agent/src/runtimes.rs`).

use serde::{Deserialize, Serialize};

/// Which duroxide provider the agents' runtimes use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// duroxide-pg on a schema of the run's own: the system under test.
    #[default]
    Postgres,
    /// duroxide's SQLite provider in the agent's memory: the single-process
    /// reference (one agent; its runtimes share the store).
    SqliteMemory,
    /// duroxide's SQLite provider on a file of the run's own (one agent).
    SqliteFile,
}

/// Where a provider keeps its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreSite {
    /// A schema of the run's own on a Postgres server (the throwaway one,
    /// the user's URL or the HA cluster): any number of agents share it.
    Server,
    /// In the agent process's memory: one agent, gone with it.
    AgentMemory,
    /// On a file of the run's own, in a directory the coordinator makes and
    /// removes with the session: one agent.
    AgentFiles,
}

/// What `compare` measures a provider as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The system under test (the ratio's numerator).
    UnderTest,
    /// A reference the system under test is measured against.
    Reference,
}

/// One provider's registry entry.
#[derive(Debug)]
pub struct Provider {
    pub kind: ProviderKind,
    /// The name on the command line and in results.
    pub name: &'static str,
    pub store: StoreSite,
    /// How a report names the store (a file store adds its directory).
    pub described: &'static str,
    /// The database host label results carry (server stores: the URL's host).
    pub host_label: &'static str,
    /// duroxide's stress module can run on it, so `bench` can measure the
    /// generator's cost against it (a file store measures the disk).
    pub benched: bool,
    pub role: Role,
}

/// Every provider, in the order `--help` lists them.
pub const PROVIDERS: [Provider; 3] = [
    Provider {
        kind: ProviderKind::Postgres,
        name: "postgres",
        store: StoreSite::Server,
        described: "duroxide-pg on a schema of the run's own",
        host_label: "",
        benched: true,
        role: Role::UnderTest,
    },
    Provider {
        kind: ProviderKind::SqliteMemory,
        name: "sqlite-memory",
        store: StoreSite::AgentMemory,
        described: "duroxide's SQLite provider in the agent's memory",
        host_label: "sqlite",
        benched: true,
        role: Role::Reference,
    },
    Provider {
        kind: ProviderKind::SqliteFile,
        name: "sqlite-file",
        store: StoreSite::AgentFiles,
        described: "duroxide's SQLite provider on files",
        host_label: "sqlite",
        benched: false,
        role: Role::Reference,
    },
];

impl ProviderKind {
    /// This provider's registry entry.
    pub fn spec(self) -> &'static Provider {
        // Every variant has an entry (a test holds it); the first is the default.
        PROVIDERS.iter().find(|p| p.kind == self).unwrap_or(&PROVIDERS[0])
    }

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The store lives in the agent process (no server, one agent).
    pub fn in_agent(self) -> bool {
        self.spec().store != StoreSite::Server
    }

    /// The providers `bench` can measure the generator on, for messages.
    pub fn benched_names() -> String {
        PROVIDERS.iter().filter(|p| p.benched).map(|p| p.name).collect::<Vec<_>>().join(" or ")
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn every_provider_has_one_entry_named_as_on_the_command_line() {
        for kind in ProviderKind::value_variants() {
            let entries: Vec<&Provider> = PROVIDERS.iter().filter(|p| p.kind == *kind).collect();
            assert_eq!(entries.len(), 1, "{kind:?}");
            let cli = kind.to_possible_value().expect("listed").get_name().to_string();
            assert_eq!(kind.as_str(), cli);
            let json = serde_json::to_string(kind).expect("json");
            assert_eq!(json, format!("\"{cli}\""));
        }
        assert_eq!(PROVIDERS.len(), ProviderKind::value_variants().len());
    }

    #[test]
    fn the_registry_answers_what_the_commands_ask() {
        assert!(!ProviderKind::Postgres.in_agent());
        assert!(ProviderKind::SqliteMemory.in_agent() && ProviderKind::SqliteFile.in_agent());
        assert_eq!(ProviderKind::benched_names(), "postgres or sqlite-memory");
        assert_eq!(ProviderKind::default().spec().role, Role::UnderTest);
    }
}
