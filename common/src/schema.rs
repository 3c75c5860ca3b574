//! Run ids, schema names and identifier validation.
//!
//! Schema names are interpolated into SQL by duroxide-pg (identifiers cannot be
//! bound as parameters), so every name that reaches the database is checked
//! against the conservative grammar the provider itself accepts.

use thiserror::Error;

/// PostgreSQL truncates identifiers longer than this many bytes.
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// Prefix of every schema this tool creates, so leaked ones are easy to find.
pub const SCHEMA_PREFIX: &str = "loadgen_";

/// Leading comment on the generator's own SQL (completion queries, audit),
/// so `pg_stat_statements` tells it apart from the provider's statements.
pub const GENERATOR_SQL_MARK: &str = "/* loadgen */";

/// The `application_name` an agent's provider connections carry for a run's
/// schema (unless the user's URL names one): operators see them in
/// `pg_stat_activity`, and the coordinator waits for them to close before it
/// reads the server's statistics (a backend flushes its counters at exit,
/// and otherwise at most once a second).
pub fn agent_application_name(schema: &str) -> String {
    // Postgres keeps 63 bytes of it; schema names are ASCII identifiers.
    let name = format!("loadgen-agent {schema}");
    name.chars().take(63).collect()
}

/// The `application_name` of one agent's connections: the run's
/// [`agent_application_name`] and the agent's worker node (`<run>-a<i>`, a
/// rolling upgrade's successor `<run>-a<i>-up`), so one agent's connections
/// can be told apart ([`agent_connection_regex`]). `None` when it would not
/// fit in the 63 bytes Postgres keeps (a very long schema name).
pub fn agent_connection_name(schema: &str, node: &str) -> Option<String> {
    let name = format!("{} {node}", agent_application_name(schema));
    (name.len() <= MAX_IDENTIFIER_LEN).then_some(name)
}

/// A POSIX regular expression (Postgres `~`) that matches the
/// `application_name` of agent `index`'s connections on `schema`, its
/// successor's included. Schema names are identifiers: nothing to escape.
pub fn agent_connection_regex(schema: &str, index: u32) -> String {
    format!("^{} [0-9a-z]+-a{index}(-up)?$", agent_application_name(schema))
}

/// A schema name that is not a plain identifier.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid schema name {name:?}: {reason} (allowed: [A-Za-z_][A-Za-z0-9_]*, at most 63 bytes)")]
pub struct InvalidSchemaName {
    pub name: String,
    pub reason: &'static str,
}

/// Check that `name` is a plain identifier: `[A-Za-z_][A-Za-z0-9_]*`, 1..=63 bytes.
pub fn validate_schema_name(name: &str) -> Result<(), InvalidSchemaName> {
    let err = |reason| Err(InvalidSchemaName { name: name.to_string(), reason });
    let mut chars = name.chars();
    match chars.next() {
        None => return err("empty"),
        Some(c) if !(c == '_' || c.is_ascii_alphabetic()) => {
            return err("must start with a letter or underscore");
        }
        _ => {}
    }
    if !chars.all(|c| c == '_' || c.is_ascii_alphanumeric()) {
        return err("only letters, digits and underscores are allowed");
    }
    if name.len() > MAX_IDENTIFIER_LEN {
        return err("too long");
    }
    if name.eq_ignore_ascii_case("public") || name.starts_with("pg_") {
        return err("reserved schema");
    }
    Ok(())
}

/// A new short run id: 8 lowercase hex digits from a v4 UUID. Short enough to
/// keep instance ids small, random enough that two runs never share one.
pub fn new_run_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    id[..8].to_string()
}

/// The schema a run uses: `loadgen_<run id>`.
pub fn schema_for_run(run_id: &str) -> String {
    format!("{SCHEMA_PREFIX}{run_id}")
}

/// Instance id of the `seq`-th orchestration started by agent `agent_index`
/// in run `run_id`: globally unique because run ids are.
pub fn instance_id(run_id: &str, agent_index: u32, seq: u64) -> String {
    format!("{run_id}-{agent_index}-{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_agents_connections_are_told_apart_by_their_name() {
        let name = agent_connection_name("loadgen_ab12cd34", "ab12cd34-a1").expect("fits");
        assert_eq!(name, "loadgen-agent loadgen_ab12cd34 ab12cd34-a1");
        let re = agent_connection_regex("loadgen_ab12cd34", 1);
        assert_eq!(re, "^loadgen-agent loadgen_ab12cd34 [0-9a-z]+-a1(-up)?$");
        // The coordinator's wait for the run's connections sees it too.
        assert!(name.starts_with(&format!("{} ", agent_application_name("loadgen_ab12cd34"))));
        assert_eq!(agent_connection_name(&"s".repeat(50), "ab12cd34-a1"), None, "too long to keep");
    }

    #[test]
    fn run_schemas_are_valid_and_distinct() {
        let a = new_run_id();
        let b = new_run_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 8);
        validate_schema_name(&schema_for_run(&a)).expect("generated schema is valid");
        assert_eq!(instance_id("ab12cd34", 2, 17), "ab12cd34-2-17");
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in ["", "1abc", "a;drop schema public", "a b", "x\"y", "public", "PUBLIC", "pg_catalog", "é"] {
            assert!(validate_schema_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_schema_name(&"a".repeat(64)).is_err());
        validate_schema_name(&"a".repeat(63)).expect("63 bytes is fine");
        validate_schema_name("_my_Schema9").expect("plain identifier");
    }
}
