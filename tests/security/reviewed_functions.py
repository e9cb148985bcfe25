"""The function lists as a person reviewed them, kept apart from the guard's own (`pgmcp.policy`), so that a change
to the guard's lists must be matched here, on purpose, with its reason (tests/security/test_policy.py checks both
ways against the server's catalogue).

VOLATILE_ALLOWED: every volatile built-in the guard accepts, and why a read-only call may run it.
MUST_DENY: built-ins that must be refused by name (rule `function_denied`, with its own explanation), whatever
their volatility; many are STABLE or IMMUTABLE, so nothing else would stop them.
"""

from __future__ import annotations

VOLATILE_ALLOWED: dict[str, str] = {
    "random": "a number; no state outlives the call (setseed, which would, is denied)",
    "random_normal": "a number, like random()",
    "array_shuffle": "reorders its argument",
    "array_sample": "picks from its argument",
    "gen_random_uuid": "a new value; writes nothing",
    "uuidv4": "a new value; writes nothing",
    "uuidv7": "a new value from the clock; writes nothing",
    "clock_timestamp": "reads the clock",
    "timeofday": "reads the clock",
    "pg_relation_size": "reads a relation's size on disk (metadata only)",
    "pg_total_relation_size": "reads sizes on disk",
    "pg_table_size": "reads sizes on disk",
    "pg_indexes_size": "reads sizes on disk",
    "pg_database_size": "reads sizes on disk (CONNECT privilege checked by PostgreSQL)",
    "pg_tablespace_size": "reads sizes on disk (CREATE privilege checked by PostgreSQL)",
    "pg_is_in_recovery": "says whether this server is a standby",
    "pg_last_wal_receive_lsn": "reads replication progress",
    "pg_last_wal_replay_lsn": "reads replication progress",
    "pg_last_xact_replay_timestamp": "reads replication progress",
    "pg_is_wal_replay_paused": "reads replication state",
    "pg_get_wal_replay_pause_state": "reads replication state",
    "pg_current_wal_lsn": "reads the WAL position",
    "pg_current_wal_insert_lsn": "reads the WAL position",
    "pg_current_wal_flush_lsn": "reads the WAL position",
}

_FILES = "touches files on the database server"
_ADMIN = "administers the server or other sessions"
_WAL = "writes to the WAL or changes server state"
_INDEX = "writes to an index"
_SQL_TEXT = "runs SQL (or a query of its own) the guard cannot see"
_WRITE = "a write, even in a read-only transaction"

MUST_DENY: dict[str, str] = {
    "pg_read_file": _FILES,
    "pg_read_binary_file": _FILES,
    "pg_stat_file": _FILES,
    "pg_file_write": _FILES,
    "pg_file_rename": _FILES,
    "pg_file_unlink": _FILES,
    "pg_file_sync": _FILES,
    "pg_logdir_ls": _FILES,
    "pg_current_logfile": "names the server's log files",
    "loread": "large objects bypass table privileges",
    "lowrite": "large objects bypass table privileges",
    "pg_terminate_backend": _ADMIN,
    "pg_cancel_backend": _ADMIN,
    "pg_reload_conf": _ADMIN,
    "pg_rotate_logfile": _ADMIN,
    "pg_promote": _ADMIN,
    "pg_switch_wal": _WAL,
    "pg_create_restore_point": _WAL,
    "pg_logical_emit_message": _WAL,
    "pg_export_snapshot": "hands a snapshot to other sessions",
    "pg_import_system_collations": "writes to the catalogue",
    "pg_nextoid": _WRITE,
    "pg_stop_making_pinned_objects": _WAL,
    "pg_extension_config_dump": "writes extension metadata",
    "brin_summarize_new_values": _INDEX,
    "brin_summarize_range": _INDEX,
    "brin_desummarize_range": _INDEX,
    "gin_clean_pending_list": _INDEX,
    "pg_stat_force_next_flush": "changes statistics collection",
    "set_config": "changes settings: the server's timeouts and limits are not the query's to change",
    "setseed": "random state that outlives the call",
    "pg_notify": "reaches other sessions",
    "nextval": _WRITE,
    "setval": _WRITE,
    "txid_current": "assigns a transaction ID",
    "pg_current_xact_id": "assigns a transaction ID",
    "query_to_xml": _SQL_TEXT,
    "query_to_xmlschema": _SQL_TEXT,
    "query_to_xml_and_xmlschema": _SQL_TEXT,
    "cursor_to_xml": _SQL_TEXT,
    "cursor_to_xmlschema": _SQL_TEXT,
    "table_to_xml": _SQL_TEXT,
    "table_to_xmlschema": _SQL_TEXT,
    "table_to_xml_and_xmlschema": _SQL_TEXT,
    "schema_to_xml": _SQL_TEXT,
    "schema_to_xmlschema": _SQL_TEXT,
    "schema_to_xml_and_xmlschema": _SQL_TEXT,
    "database_to_xml": _SQL_TEXT,
    "database_to_xmlschema": _SQL_TEXT,
    "database_to_xml_and_xmlschema": _SQL_TEXT,
    "ts_stat": _SQL_TEXT,
    # families refused by prefix: one real member of each
    "pg_ls_dir": _FILES,
    "lo_import": "server files in and out through large objects",
    "pg_advisory_lock": "a lock that outlives the call",
    "pg_try_advisory_xact_lock": "a lock that can block other applications",
    "pg_sleep": "holds a connection on purpose",
    "pg_stat_reset": "resets statistics others rely on",
    "pg_replication_origin_create": _WAL,
    "pg_create_physical_replication_slot": _WAL,
    "pg_drop_replication_slot": _WAL,
    "pg_copy_physical_replication_slot": _WAL,
    "pg_logical_slot_get_changes": "consumes a replication slot",
    "pg_replication_slot_advance": _WAL,
    "pg_sync_replication_slots": _WAL,
    "pg_wal_replay_pause": _ADMIN,
    "pg_backup_start": _ADMIN,
    "pg_restore_relation_stats": "writes planner statistics",
    "pg_clear_relation_stats": "writes planner statistics",
    "pg_log_backend_memory_contexts": "writes to the server log",
    "binary_upgrade_set_next_pg_type_oid": "pg_upgrade only: rewrites catalogue state",
}
"""Every name on the guard's deny-list (adminpack's pg_file_* and pg_logdir_ls too: refused whether installed
or not), and one member per prefix family (tablefunc's connectby and crosstab, dblink and pg_stat_statements are
extensions, not installed here)."""
