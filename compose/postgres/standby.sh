#!/usr/bin/env bash
# A hot standby of the `postgres` service (`make up PROFILE=scale`, compose/scale.yaml), in the postgres image.
# First start: pg_basebackup clones the primary over TLS as the `replicator` role (REPLICATION and nothing
# else, compose/initdb/10-roles.sh) into this container's own volume, with a replication slot of its own
# (STANDBY_SLOT) so that the primary keeps the WAL this standby still needs. Every start: PostgreSQL in
# standby mode, streaming from that slot. The password stays in a file in tmpfs, never in the data directory.
#   PRIMARY_HOST  the primary's service name (default postgres)
#   STANDBY_SLOT  the replication slot's name, one per standby (default standby_1)
set -Eeuo pipefail

PRIMARY_HOST="${PRIMARY_HOST:-postgres}"
STANDBY_SLOT="${STANDBY_SLOT:-standby_1}"
PASSWORD_FILE="${REPLICATOR_PASSWORD_FILE:-/run/secrets/replicator_password}"
CA_FILE="${STANDBY_SSLROOTCERT:-/run/secrets/tls_ca_cert}"
PASSFILE=/tmp/replicator.pgpass

log() { printf 'standby: %s\n' "$*" >&2; }
die() {
	printf 'standby: error: %s\n' "$1" >&2
	shift
	printf '    %s\n' "$@" >&2
	exit 1
}

[[ -r "$PASSWORD_FILE" ]] || die "unable to read the replicator's password ($PASSWORD_FILE)" \
	"hint: make up creates compose/secrets/replicator_password (ops/secrets.sh)"
[[ "$STANDBY_SLOT" =~ ^[a-z0-9_]{1,63}$ ]] || die "STANDBY_SLOT=$STANDBY_SLOT is not a slot name" \
	"hint: lower-case letters, digits and _, at most 63"

# libpq's password file: host:port:database:user:password, with : and \ escaped
(
	umask 077
	password="$(<"$PASSWORD_FILE")"
	password="${password//\\/\\\\}"
	printf '%s:5432:replication:replicator:%s\n' "$PRIMARY_HOST" "${password//:/\\:}" >"$PASSFILE"
)
conninfo="host=$PRIMARY_HOST port=5432 user=replicator passfile=$PASSFILE sslmode=verify-full"
conninfo+=" sslrootcert=$CA_FILE application_name=$STANDBY_SLOT connect_timeout=5"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
	log "cloning $PRIMARY_HOST with pg_basebackup into $PGDATA (slot $STANDBY_SLOT)"
	mkdir -p "$(dirname "$PGDATA")"
	rm -rf "$PGDATA" # an interrupted clone leaves a partial directory
	backup() { pg_basebackup --dbname="$conninfo" --pgdata="$PGDATA" --wal-method=stream \
		--slot="$STANDBY_SLOT" --checkpoint=fast --progress "$@"; }
	if ! output="$(backup --create-slot 2>&1)"; then
		if [[ "$output" == *"already exists"* ]]; then
			# the slot outlived an earlier clone (its volume was removed): use it again
			log "slot $STANDBY_SLOT exists on $PRIMARY_HOST: using it"
			rm -rf "$PGDATA"
			backup || die "pg_basebackup from $PRIMARY_HOST failed (above)"
		else
			printf '%s\n' "$output" >&2
			rm -rf "$PGDATA"
			die "pg_basebackup from $PRIMARY_HOST failed" \
				"hint: the primary needs the replicator role (made by compose/initdb/10-roles.sh on a new data directory) and pg_hba.conf's replication lines"
		fi
	fi
	log "clone complete"
fi
touch "$PGDATA/standby.signal"

# hot_standby_feedback: the primary keeps the rows a standby's queries still read, so VACUUM on the primary
# does not cancel them; max_standby_streaming_delay: replay waits up to 30 s for a query that holds a
# conflicting lock before cancelling it (a 5 s analytical query is not cancelled by replay).
log "starting as a hot standby of $PRIMARY_HOST (slot $STANDBY_SLOT)"
exec postgres \
	-c config_file=/etc/postgresql/postgresql.conf \
	-c hba_file=/etc/postgresql/pg_hba.conf \
	-c primary_conninfo="$conninfo" \
	-c primary_slot_name="$STANDBY_SLOT" \
	-c hot_standby=on \
	-c hot_standby_feedback=on \
	-c max_standby_streaming_delay=30s \
	-c max_standby_archive_delay=30s \
	-c wal_receiver_timeout=30s
