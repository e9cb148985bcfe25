#!/usr/bin/env bash
# Rotate a role's password so that no password is ever one that no file holds:
#   1. the old password is kept beside the secret, in <secret>.previous (written atomically: a temporary
#      file in the same directory with the secret's owner and mode, then a rename);
#   2. the new password is written into the secret file; if that fails, the database is not touched;
#   3. the database learns it (ALTER ROLE, as postgres with the superuser's password as it was before step
#      2: rotating postgres itself logs in with its old password); if that fails, the old file comes back;
#   4. <secret>.previous goes, and the one service that reads the secret is recreated and awaited.
# Step 2 rewrites the file in place rather than renaming a new one over it: Compose bind-mounts each secret
# file into the running containers, a bind mount keeps the inode it was made with, and the postgres
# container (its health check, make psql) must read the new password without a restart.
# usage: ops/rotate-password.sh mcp_reader|backup_operator|app_owner|postgres
#        make rotate-password ROLE=mcp_reader|backup_operator|app_owner|postgres
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECRETS_DIR="${SECRETS_DIR:-$OPS_ROOT/compose/secrets}"
ROTATE_USAGE="usage: make rotate-password ROLE=mcp_reader|backup_operator|app_owner|postgres|replicator"

# usage: rotate_read PATH  -> the password PATH holds
rotate_read() {
	[[ -s "$1" ]] || ops_die "no secret file $1" "hint: make up creates the secrets (ops/secrets.sh)"
	[[ -r "$1" ]] || ops_die "unable to read $1" "hint: run as root: the secrets belong to uid $OPS_SERVICE_UID (ops/secrets.sh)"
	local password
	IFS= read -r password <"$1" || : # ignore: a last line without a newline is read all the same
	printf '%s' "$password"
}

# usage: rotate_keep_previous PATH PASSWORD
# Writes PASSWORD to PATH.previous atomically, with PATH's owner and mode. Returns non-zero, leaving
# nothing behind, when it cannot.
rotate_keep_previous() {
	local path="$1" temporary
	temporary="$(mktemp "$path.XXXXXX")" || return 1
	if printf '%s\n' "$2" >"$temporary" && chown --reference="$path" "$temporary" &&
		chmod --reference="$path" "$temporary" && mv -f "$temporary" "$path.previous"; then
		return 0
	fi
	rm -f "$temporary"
	return 1
}

# usage: rotate_write PATH PASSWORD
# Rewrites PATH in place (same inode, owner and mode) and reads it back. Returns non-zero when PATH does
# not hold PASSWORD afterwards.
rotate_write() {
	local back=""
	printf '%s\n' "$2" >"$1" || return 1
	IFS= read -r back <"$1" || : # ignore: checked below
	[[ "$back" == "$2" ]]
}

# usage: rotate_alter ROLE SUPERUSER-PASSWORD NEW-PASSWORD
# ALTER ROLE in the postgres container, logged in as postgres over TCP. The passwords travel on stdin and
# into psql through its environment (\getenv): never argv. One autocommitted statement: a failure means
# the role kept its password.
rotate_alter() {
	# shellcheck disable=SC2016 # expanded inside the container, on purpose
	printf '%s\n%s\n' "$2" "$3" | "$OPS_ROOT/ops/compose.sh" exec -T postgres bash -c '
		set -Eeuo pipefail
		IFS= read -r PGPASSWORD
		IFS= read -r NEW_PASSWORD
		export PGPASSWORD NEW_PASSWORD
		psql --no-psqlrc -q -h 127.0.0.1 -U postgres -d app -v ON_ERROR_STOP=1 -v role="$1" <<-"SQL"
			\getenv pw NEW_PASSWORD
			ALTER ROLE :"role" PASSWORD :'"'"'pw'"'"';
		SQL' rotate "$1"
}

rotate_main() {
	local role="${1:-}" secret service=""
	if ops_external; then
		ops_die "external mode: the roles live on your server, which this script does not change" \
			"hint: run make reader-role ADMIN_URL=<an admin's URL> after removing the role's file from $(ops_secrets_dir): it writes a new password and sets it there, then make up"
	fi
	case "$role" in
		mcp_reader) secret=mcp_reader_password service=mcp ;;
		backup_operator) secret=backup_password service=backup ;;
		app_owner) secret=app_owner_password ;;
		postgres) secret=postgres_password ;;
		replicator) secret=replicator_password ;;
		"") ops_usage "name the role whose password to rotate (there is no default)" "$ROTATE_USAGE" ;;
		*) ops_usage "unknown role '${role}'" "$ROTATE_USAGE" ;;
	esac
	local path="$SECRETS_DIR/$secret" old superuser new
	old="$(rotate_read "$path")"
	superuser="$(rotate_read "$SECRETS_DIR/postgres_password")"
	new="$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')"

	ops_step "writing the new password of role $role to $path"
	rotate_keep_previous "$path" "$old" ||
		ops_die "unable to write $path.previous: nothing was changed, the old password still works" \
			"hint: make $SECRETS_DIR writable for $(id -un) (a read-only mount? run as root?), then run this again"
	if ! rotate_write "$path" "$new"; then
		rotate_write "$path" "$old" || : # ignore: when the file could not be opened it was not changed
		rm -f "$path.previous"
		ops_die "unable to write $path: the database was not touched, the old password still works" \
			"hint: make $path writable for $(id -un) (a read-only mount? run as root?), then run this again"
	fi

	ops_step "setting the new password of role $role in the database"
	if ! rotate_alter "$role" "$superuser" "$new"; then
		if rotate_write "$path" "$old"; then
			rm -f "$path.previous"
			ops_die "unable to set the new password of role $role in the database: $path holds the old one again" \
				"hint: check that the stack is up and the role exists (make ps; make psql), then run this again"
		fi
		ops_die "unable to set the new password of role $role, and unable to put the old one back in $path" \
			"hint: the database still has the old password, in $path.previous: cp $path.previous $path"
	fi
	rm -f "$path.previous"
	ops_note "updated $path"

	if [[ -n "$service" ]]; then
		ops_step "recreating $service so it reads the new password"
		"$OPS_ROOT/ops/compose.sh" up -d --no-deps --force-recreate "$service"
		"$OPS_ROOT/ops/wait-healthy.sh" "$service"
	fi
}

rotate_main "$@"
