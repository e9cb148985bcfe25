#!/usr/bin/env bash
# Create the stack's roles (the README's Roles table). Run once, on an empty data directory, by the postgres
# image's entrypoint (or by the test fixture that mimics it), as POSTGRES_USER on POSTGRES_DB.
#
# Reads (each role password comes from a file so it never appears in argv or in `docker inspect`):
#   POSTGRES_USER, POSTGRES_DB
#   APP_OWNER_PASSWORD_FILE, MCP_READER_PASSWORD_FILE, BACKUP_PASSWORD_FILE, REPLICATOR_PASSWORD_FILE
#   MCP_READER_CONNECTION_LIMIT (default 20), MCP_READER_STATEMENT_TIMEOUT (default 30s)
set -Eeuo pipefail

# usage: roles_read_secret VAR_FILE
#    ie: APP_PW="$(roles_read_secret APP_OWNER_PASSWORD_FILE)"
# Prints the content of the file named by the variable, or stops with what to set.
roles_read_secret() {
	local var="$1"
	local path="${!var:-}"
	if [[ -z "$path" ]]; then
		printf '%s: %s is not set: point it at the file holding that role'\''s password\n' "$0" "$var" >&2
		exit 1
	fi
	if [[ ! -r "$path" ]]; then
		printf '%s: unable to read %s=%s: file missing or not readable by uid %s\n' "$0" "$var" "$path" "$(id -u)" >&2
		exit 1
	fi
	local value
	value="$(<"$path")"
	if [[ ${#value} -lt 16 ]]; then
		printf '%s: the password in %s is shorter than 16 characters: generate a stronger one\n' "$0" "$path" >&2
		exit 1
	fi
	printf '%s' "$value"
}

roles_main() {
	# The passwords travel to psql through its environment (read with \getenv), never through argv.
	APP_OWNER_PW="$(roles_read_secret APP_OWNER_PASSWORD_FILE)" \
	MCP_READER_PW="$(roles_read_secret MCP_READER_PASSWORD_FILE)" \
	BACKUP_PW="$(roles_read_secret BACKUP_PASSWORD_FILE)" \
	REPLICATOR_PW="$(roles_read_secret REPLICATOR_PASSWORD_FILE)" \
	psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password \
		--username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
		--set=db="$POSTGRES_DB" \
		--set=reader_limit="${MCP_READER_CONNECTION_LIMIT:-20}" \
		--set=reader_timeout="${MCP_READER_STATEMENT_TIMEOUT:-30s}" <<-'SQL'
		\getenv app_owner_pw APP_OWNER_PW
		\getenv mcp_reader_pw MCP_READER_PW
		\getenv backup_pw BACKUP_PW
		\getenv replicator_pw REPLICATOR_PW

		-- App owner: owns the application schema, may change it, nothing cluster-wide.
		CREATE ROLE app_owner LOGIN PASSWORD :'app_owner_pw'
			NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

		-- MCP reader: what the MCP server logs in as. Read-only by default on every session, a bounded
		-- statement time, a connection cap the MCP pool stays below, and no way to create anything.
		CREATE ROLE mcp_reader LOGIN PASSWORD :'mcp_reader_pw'
			NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT
			CONNECTION LIMIT :reader_limit;
		ALTER ROLE mcp_reader SET default_transaction_read_only = on;
		ALTER ROLE mcp_reader SET statement_timeout = :'reader_timeout';
		ALTER ROLE mcp_reader SET idle_in_transaction_session_timeout = '60s';
		ALTER ROLE mcp_reader SET lock_timeout = '2s';
		-- A sort or hash that spills cannot fill the disk: past this, the query fails (SQLSTATE 53400).
		ALTER ROLE mcp_reader SET temp_file_limit = '1GB';

		-- Backup operator: reads every table of every database; may use the reserved connection slots,
		-- so a backup still runs when ordinary clients hold every other slot; reads every session's state
		-- (pg_monitor), for postgres_exporter with PROFILE=monitoring.
		CREATE ROLE backup_operator LOGIN PASSWORD :'backup_pw'
			NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
			IN ROLE pg_read_all_data, pg_use_reserved_connections, pg_monitor;

		-- Replicator: what a hot standby's pg_basebackup and WAL receiver log in as. REPLICATION and nothing
		-- else: no database to connect to (pg_hba.conf lets it reach only the `replication` pseudo-database),
		-- no membership, a few connections (a standby holds one, a base backup two).
		CREATE ROLE replicator LOGIN REPLICATION PASSWORD :'replicator_pw'
			NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT
			CONNECTION LIMIT 5;

		-- Nobody gets TEMP or CONNECT through PUBLIC: each role is granted what it needs below.
		REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
		REVOKE ALL ON DATABASE postgres FROM PUBLIC;
		REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;
		GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO app_owner;
		GRANT CONNECT ON DATABASE :"db" TO mcp_reader;
		GRANT CONNECT ON DATABASE :"db", postgres TO backup_operator;
		-- PostgreSQL 15+ no longer lets PUBLIC create in schema public; say so anyway, in case of an
		-- upgraded template.
		REVOKE CREATE ON SCHEMA public FROM PUBLIC;

		-- The application schema, owned by app_owner; the reader may look, nothing more.
		CREATE SCHEMA shop AUTHORIZATION app_owner;
		COMMENT ON SCHEMA shop IS 'Demo online shop: customers, products, orders and their line items';
		GRANT USAGE ON SCHEMA shop TO mcp_reader;
		ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA shop GRANT SELECT ON TABLES TO mcp_reader;

		-- Query statistics for operators (preloaded in postgresql.conf).
		CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
	SQL
}

roles_main "$@"
