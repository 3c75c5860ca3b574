//! The SQLSTATEs the `sqlstate` fault answers with, and the provider's
//! procedures it may target.

/// The SQLSTATEs the fault raises, with their condition names: the classes
/// production answers a provider with (and a few it must never retry).
/// Classes 00 to 02 are not errors and are not here.
pub const CODES: &[(&str, &str)] = &[
    ("40001", "serialization_failure"),
    ("40P01", "deadlock_detected"),
    ("40003", "statement_completion_unknown"),
    ("57P01", "admin_shutdown"),
    ("57P02", "crash_shutdown"),
    ("57P03", "cannot_connect_now"),
    ("57P04", "database_dropped"),
    ("57014", "query_canceled"),
    ("53300", "too_many_connections"),
    ("53200", "out_of_memory"),
    ("53100", "disk_full"),
    ("53400", "configuration_limit_exceeded"),
    ("55P03", "lock_not_available"),
    ("55006", "object_in_use"),
    ("55000", "object_not_in_prerequisite_state"),
    ("25006", "read_only_sql_transaction"),
    ("25P02", "in_failed_sql_transaction"),
    ("08000", "connection_exception"),
    ("08003", "connection_does_not_exist"),
    ("08006", "connection_failure"),
    ("0A000", "feature_not_supported"),
    ("23505", "unique_violation"),
    ("23503", "foreign_key_violation"),
    ("42P01", "undefined_table"),
    ("42883", "undefined_function"),
    ("42501", "insufficient_privilege"),
    ("54000", "program_limit_exceeded"),
    ("58000", "system_error"),
    ("58030", "io_error"),
    ("XX000", "internal_error"),
    ("XX001", "data_corrupted"),
];

/// duroxide-pg's stored procedures (0.1.36 to 0.1.38) that its provider
/// calls under load; a procedure a build's schema lacks fails the fault
/// when it is applied.
pub const PROCEDURES: &[&str] = &[
    "abandon_orchestration_item",
    "abandon_work_item",
    "ack_orchestration_item",
    "ack_worker",
    "append_history",
    "delete_instances_atomic",
    "enqueue_completion",
    "enqueue_message",
    "enqueue_orchestrator_work",
    "enqueue_worker_work",
    "fetch_history",
    "fetch_history_with_execution",
    "fetch_orchestration_item",
    "fetch_work_item",
    "get_custom_status",
    "get_execution_info",
    "get_instance_info",
    "get_kv_all_values",
    "get_kv_value",
    "get_queue_depths",
    "latest_execution_id",
    "list_executions",
    "list_instances",
    "renew_orchestration_item_lock",
    "renew_session_lock",
    "renew_work_item_lock",
];

/// The code `name` (a SQLSTATE or a condition name), with its condition name.
pub fn code_of(name: &str) -> Option<(&'static str, &'static str)> {
    CODES.iter().copied().find(|(code, cond)| code.eq_ignore_ascii_case(name) || *cond == name)
}

/// "17 of 230 ..." (what the fault reports, and what an agent's relay
/// reports of the connections it refused): the hits and the attempts.
pub fn hits_of(detail: &str) -> (Option<u64>, Option<u64>) {
    let mut words = detail.split(' ');
    match (words.next(), words.next(), words.next()) {
        (Some(h), Some("of"), Some(c)) => match (h.parse().ok(), c.parse().ok()) {
            (Some(h), Some(c)) => (Some(h), Some(c)),
            _ => (None, None),
        },
        _ => (None, None),
    }
}
