#!/usr/bin/env bash
# Entrypoint of the offline postgres:18 stand-in. Written from the documented contract of the official
# image (https://hub.docker.com/_/postgres), so compose.yaml works unchanged with either image:
#   POSTGRES_PASSWORD[_FILE]  superuser password (required on first start, unless
#                             POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER[_FILE]      superuser name (default postgres)
#   POSTGRES_DB[_FILE]        database created on first start (default: POSTGRES_USER)
#   POSTGRES_INITDB_ARGS[_FILE] extra initdb arguments, split on whitespace
#   POSTGRES_HOST_AUTH_METHOD method of the catch-all pg_hba.conf line (default scram-sha-256)
#   PGDATA                    data directory (default /var/lib/postgresql/$PG_MAJOR/docker)
# On an empty data directory: initdb, then a server listening on its Unix socket only runs
# /docker-entrypoint-initdb.d/* in sorted order (*.sh executed if executable, else sourced; *.sql,
# *.sql.gz through psql), then stops. A non-empty data directory skips all of that. Finally the server
# is exec'd as PID 1, so SIGINT (the image's STOPSIGNAL) means a fast shutdown.
set -Eeuo pipefail

# usage: docker_file_env VAR [DEFAULT]
#    ie: docker_file_env POSTGRES_PASSWORD
# Sets VAR from $VAR or from the file named by $VAR_FILE (exclusive), else DEFAULT; unsets VAR_FILE.
docker_file_env() {
	local var="$1" file_var="${1}_FILE" default="${2:-}"
	if [[ -n "${!var:-}" && -n "${!file_var:-}" ]]; then
		printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$file_var"
		exit 1
	fi
	local value="$default"
	if [[ -n "${!var:-}" ]]; then
		value="${!var}"
	elif [[ -n "${!file_var:-}" ]]; then
		if [[ ! -r "${!file_var}" ]]; then
			printf >&2 'error: %s=%s: the file is missing or not readable by uid %s\n' "$file_var" "${!file_var}" "$(id -u)"
			exit 1
		fi
		value="$(<"${!file_var}")"
	fi
	export "$var"="$value"
	unset "$file_var"
}

# usage: docker_setup_env
# Loads every setting once; DATABASE_ALREADY_EXISTS tells whether initialisation is needed.
docker_setup_env() {
	docker_file_env POSTGRES_PASSWORD
	docker_file_env POSTGRES_USER postgres
	docker_file_env POSTGRES_DB "$POSTGRES_USER"
	docker_file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
	: "${PGDATA:=/var/lib/postgresql/${PG_MAJOR:-18}/docker}"
	export PGDATA
	DATABASE_ALREADY_EXISTS=
	if [[ -s "$PGDATA/PG_VERSION" ]]; then
		DATABASE_ALREADY_EXISTS=true
	fi
}

# usage: docker_create_db_directories
# Creates PGDATA and the socket directory; as root also hands them to the postgres user.
docker_create_db_directories() {
	mkdir -p "$PGDATA" /var/run/postgresql
	# initdb refuses a data directory that others can read
	chmod 00700 "$PGDATA" || : # ignore: a non-root user may not own a pre-existing mount point
	if [[ "$(id -u)" == 0 ]]; then
		chown -R postgres:postgres "$PGDATA" /var/run/postgresql
		chmod 03775 /var/run/postgresql
	fi
}

# usage: docker_verify_minimum_env
docker_verify_minimum_env() {
	if [[ -z "$POSTGRES_PASSWORD" && "$POSTGRES_HOST_AUTH_METHOD" != trust ]]; then
		cat >&2 <<-'EOE'
			error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty value
			       for the superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
			       POSTGRES_HOST_AUTH_METHOD=trust allows connections without a password, which is
			       not recommended.
		EOE
		exit 1
	fi
	if [[ -n "$POSTGRES_PASSWORD" && ${#POSTGRES_PASSWORD} -lt 8 ]]; then
		printf >&2 'warning: the superuser password is shorter than 8 characters\n'
	fi
}

# usage: docker_check_initdb_dir
# Fails before initdb, not half-way through: a half-initialised database would skip init on restart.
docker_check_initdb_dir() {
	if [[ -e /docker-entrypoint-initdb.d ]] && ! ls /docker-entrypoint-initdb.d/ >/dev/null; then
		printf >&2 'error: /docker-entrypoint-initdb.d exists but cannot be listed by uid %s\n' "$(id -u)"
		exit 1
	fi
}

# usage: docker_init_database_dir
docker_init_database_dir() {
	local -a extra=()
	if [[ -n "$POSTGRES_INITDB_ARGS" ]]; then
		read -r -a extra <<<"$POSTGRES_INITDB_ARGS"
	fi
	if [[ -n "$POSTGRES_PASSWORD" ]]; then
		# The password reaches initdb through a pipe, never through argv. The process substitution must
		# sit in initdb's own command line: its file descriptor lives only as long as that command.
		initdb --username="$POSTGRES_USER" --pgdata="$PGDATA" \
			--pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${extra[@]}"
	else
		initdb --username="$POSTGRES_USER" --pgdata="$PGDATA" "${extra[@]}"
	fi
}

# usage: pg_setup_hba_conf
# The catch-all line of the official image, for servers started without our own hba_file.
pg_setup_hba_conf() {
	printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
}

# usage: docker_temp_server_start "$@"
# The server that runs the init scripts listens on its Unix socket only: nobody can connect over TCP
# to a half-built database (and a TCP health check cannot report it ready).
docker_temp_server_start() {
	local -a options=()
	local arg
	for arg in "$@"; do
		options+=("$(printf '%q' "$arg")")
	done
	PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -w \
		-o "${options[*]:1} -c listen_addresses='' -p ${PGPORT:-5432}" start
}

# usage: docker_temp_server_stop
docker_temp_server_stop() {
	PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -m fast -w stop
}

# usage: docker_process_sql [psql-args...]
#    ie: docker_process_sql --dbname=mydb -f my-file.sql
docker_process_sql() {
	local -a query_runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	PGHOST='' PGHOSTADDR='' "${query_runner[@]}" "$@"
}

# usage: docker_setup_db
# Creates POSTGRES_DB unless it exists already (postgres does).
docker_setup_db() {
	local exists
	exists="$(docker_process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
		SELECT 1 FROM pg_database WHERE datname = :'db';
	EOSQL
	)"
	if [[ -z "${exists//[[:space:]]/}" ]]; then
		docker_process_sql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db";
		EOSQL
	fi
}

# usage: docker_process_init_files FILE...
docker_process_init_files() {
	local file
	for file in "$@"; do
		case "$file" in
			*.sh)
				if [[ -x "$file" ]]; then
					printf '%s: running %s\n' "$0" "$file"
					"$file"
				else
					printf '%s: sourcing %s\n' "$0" "$file"
					# shellcheck disable=SC1090 # the init scripts are the user's
					. "$file"
				fi
				;;
			*.sql)
				printf '%s: running %s\n' "$0" "$file"
				docker_process_sql --dbname "$POSTGRES_DB" -f "$file"
				;;
			*.sql.gz)
				printf '%s: running %s\n' "$0" "$file"
				gunzip -c "$file" | docker_process_sql --dbname "$POSTGRES_DB"
				;;
			*)
				printf '%s: ignoring %s\n' "$0" "$file"
				;;
		esac
	done
}

# usage: _pg_want_help "$@"
# True when the command asks postgres for help or its version: no initialisation then.
_pg_want_help() {
	local arg
	for arg; do
		case "$arg" in
			-'?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

_main() {
	# `docker run image -c foo=bar` means `postgres -c foo=bar`
	if [[ "${1:0:1}" == '-' ]]; then
		set -- postgres "$@"
	fi
	if [[ "$1" == postgres ]] && ! _pg_want_help "$@"; then
		docker_setup_env
		docker_create_db_directories
		if [[ "$(id -u)" == 0 ]]; then
			# drop to the postgres user and start over (setpriv: util-linux, no gosu needed)
			exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
		fi
		if [[ -z "$DATABASE_ALREADY_EXISTS" ]]; then
			docker_verify_minimum_env
			docker_check_initdb_dir
			docker_init_database_dir
			pg_setup_hba_conf
			export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
			docker_temp_server_start "$@"
			docker_setup_db
			local -a init_files=()
			if [[ -d /docker-entrypoint-initdb.d ]]; then
				mapfile -t init_files < <(find /docker-entrypoint-initdb.d -mindepth 1 -maxdepth 1 | LC_ALL=C sort)
			fi
			docker_process_init_files "${init_files[@]}"
			docker_temp_server_stop
			unset PGPASSWORD
			printf '\nPostgreSQL init process complete; ready for start up.\n\n'
		else
			printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
		fi
	fi
	exec "$@"
}

# Sourcing this file (tests do) defines the functions without running anything.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	_main "$@"
fi
