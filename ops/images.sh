#!/usr/bin/env bash
# Choose the base images the stack builds on, and build offline stand-ins where no registry answers.
#
# With a registry: the official images, pinned (POSTGRES_IMAGE, PYTHON_IMAGE below).
# Without one (air-gapped sites, this project's CI): stand-ins built once from the distribution's
# packages and PyPI, then reused:
#   pgstack/debian:bookworm            debootstrap + docker import
#   pgstack/python:3.11-bookworm       Debian's Python 3.11 on it, trusting the host's local CAs
#   pgstack/debian:sid                 the same from Debian's unstable suite, which carries PostgreSQL 18
#   pgstack/postgres:18.6-sid          Debian's postgresql-18 (OpenSSL, libxml, ICU, LZ4, zstd) with an
#                                      entrypoint that honours the official image's contract
#                                      (ops/images/postgres)
#   pgstack/haproxy:3.2-sid            Debian's haproxy, for PROFILE=scale only (ops/images/haproxy)
#   pgstack/caddy:2.11-sid             Debian's caddy, for PROFILE=tls only (ops/images/caddy)
#   pgstack/monitoring:3.5-sid         Debian's prometheus, promtool, alertmanager and postgres-exporter, for
#                                      PROFILE=monitoring and the alert rules' unit tests (ops/images/monitoring)
# The Debian mirror is the one this host's apt uses (DEBIAN_MIRROR overrides it).
# The choice is written to .state/images.env, which ops/compose.sh reads.
# usage: ops/images.sh            (choose, building stand-ins when needed)
#        ops/images.sh --offline  (skip the registry probe: always use the stand-ins)
#        ops/images.sh --postgres-major 19  (build the next major's image, with the current major's binaries
#                                            for pg_upgrade, and print its name: make upgrade-postgres)
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OFFICIAL_POSTGRES_IMAGE="postgres:18.6-bookworm"
OFFICIAL_PYTHON_IMAGE="python:3.11-slim-bookworm"
OFFICIAL_HAPROXY_IMAGE="haproxy:3.2"
OFFICIAL_CADDY_IMAGE="caddy:2.11"
OFFICIAL_PROMETHEUS_IMAGE="prom/prometheus:v3.5.0"
OFFICIAL_ALERTMANAGER_IMAGE="prom/alertmanager:v0.33.1"
OFFICIAL_POSTGRES_EXPORTER_IMAGE="prometheuscommunity/postgres-exporter:v0.19.1"
STANDIN_DEBIAN_IMAGE="pgstack/debian:bookworm"
STANDIN_DEBIAN_SID_IMAGE="pgstack/debian:sid"
STANDIN_PYTHON_IMAGE="pgstack/python:3.11-bookworm"
STANDIN_POSTGRES_IMAGE="pgstack/postgres:18.6-sid"
STANDIN_HAPROXY_IMAGE="pgstack/haproxy:3.2-sid"
STANDIN_CADDY_IMAGE="pgstack/caddy:2.11-sid"
STANDIN_MONITORING_IMAGE="pgstack/monitoring:3.5-sid" # Prometheus, Alertmanager and postgres_exporter
# Debian's PostgreSQL package, pinned: the mirror's unstable suite may move elsewhere
POSTGRES_DEBIAN_VERSION="18.6-3"
# The next major release, for make upgrade-postgres: a release candidate in Debian's experimental suite
POSTGRES_NEXT_MAJOR=19
POSTGRES_NEXT_VERSION="19rc1"
POSTGRES_NEXT_DEBIAN_VERSION="19~rc1-1"
POSTGRES_NEXT_SUITE=experimental
STANDIN_POSTGRES_NEXT_IMAGE="pgstack/postgres:19rc1-experimental"
HAPROXY_DEBIAN_VERSION="3.2.26-1"
CADDY_DEBIAN_VERSION="2.11.4-1"
PROMETHEUS_DEBIAN_VERSION="3.5.3+ds1-6"
ALERTMANAGER_DEBIAN_VERSION="0.33.1-5"
POSTGRES_EXPORTER_DEBIAN_VERSION="0.19.1-1+b1"
# PROFILE=pooler's image (compose/pgbouncer) installs this package on the postgres image: pinned on the stand-in
PGBOUNCER_STANDIN_PACKAGE="pgbouncer=1.26.1-1"

# usage: images_present IMAGE...
images_present() {
	local image
	for image in "$@"; do
		docker image inspect "$image" >/dev/null 2>&1 || return 1
	done
}

# usage: images_pull_official
# True when both official images are here or can be pulled. A machine with no registry fails at once.
images_pull_official() {
	if images_present "$OFFICIAL_POSTGRES_IMAGE" "$OFFICIAL_PYTHON_IMAGE"; then
		return 0
	fi
	local image
	for image in "$OFFICIAL_POSTGRES_IMAGE" "$OFFICIAL_PYTHON_IMAGE"; do
		ops_step "pulling $image"
		if ! ops_run_with_progress '^(Digest|Status|[0-9a-f]+: (Pull complete|Already exists))' \
			"$OPS_STATE_DIR/logs/pull-${image//[:\/]/-}.log" docker pull "$image"; then
			ops_note "no registry answered for $image: using offline stand-ins instead"
			return 1
		fi
	done
}

# usage: images_build TAG CONTEXT [BUILD-ARG...]
#    ie: images_build pgstack/python:3.11-bookworm "$context" BASE_IMAGE=pgstack/debian:bookworm
# `docker build`, showing each build step as it starts and how long the build took (its log:
# .state/logs/build-<tag>.log).
images_build() {
	local tag="$1" context="$2" arg
	shift 2
	local -a build_args=()
	for arg in "$@"; do
		build_args+=(--build-arg "$arg")
	done
	ops_step "building $tag"
	local log="$OPS_STATE_DIR/logs/build-${tag//[:\/]/-}.log"
	ops_run_with_progress "$OPS_BUILD_STEP_LINES" "$log" docker build "${build_args[@]}" -t "$tag" "$context" ||
		ops_die "unable to build $tag" "hint: read $log"
}

# usage: images_debian_mirror
# The Debian mirror this host's apt already uses (deb822 sources or the classic sources.list), so that an
# air-gapped site's own mirror is used without configuration. DEBIAN_MIRROR overrides it.
images_debian_mirror() {
	if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
		printf '%s\n' "${DEBIAN_MIRROR%/}"
		return 0
	fi
	local mirror
	mirror="$(images_mirror_from_apt /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)"
	[[ -n "$mirror" ]] || ops_die "no Debian mirror found in this host's apt sources (/etc/apt/sources.list*)" \
		"hint: set DEBIAN_MIRROR to a Debian mirror's URL (the one that serves the main archive, not -security)"
	printf '%s\n' "$mirror"
}

# usage: images_mirror_from_apt FILE...
# Prints the first URI of a source that serves one of Debian's own suites (a release name, optionally
# -updates or -backports; not -security, not a third party's repository): a deb822 stanza's `URIs:` or a
# classic `deb [options] URI SUITE` line.
images_mirror_from_apt() {
	local file
	for file in "$@"; do
		[[ -r "$file" ]] || continue
		awk -v deb822="$([[ "$file" == *.sources ]] && echo 1 || echo 0)" '
			function debian_suite(name) {
				return name ~ /^(bullseye|bookworm|trixie|forky|duke|sid|unstable|testing|stable|oldstable)(-updates|-backports)?$/
			}
			deb822 == 1 {
				if ($0 ~ /^[ \t]*$/) { stanza(); next }
				if ($1 == "Types:") for (i = 2; i <= NF; i++) if ($i == "deb") is_deb = 1
				if ($1 == "URIs:") uri = $2
				if ($1 == "Suites:") for (i = 2; i <= NF; i++) if (debian_suite($i)) ours = 1
				next
			}
			$1 == "deb" {
				i = 2
				if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if (debian_suite($(i + 1))) { print $i; exit }
			}
			function stanza() {
				if (uri != "" && is_deb && ours && !found) { print uri; found = 1; exit }
				uri = ""; is_deb = 0; ours = 0
			}
			END { if (deb822 == 1) stanza() }' "$file"
	done | head -n 1 | sed 's:/*$::'
}

# usage: images_build_debian SUITE TAG
#    ie: images_build_debian sid pgstack/debian:sid
# A minimal Debian root filesystem of SUITE from the host's Debian mirror, imported as an image.
images_build_debian() {
	local suite="$1" tag="$2"
	if images_present "$tag"; then
		ops_note "$tag already built"
		return 0
	fi
	if ! command -v debootstrap >/dev/null 2>&1; then
		ops_install_packages "install debootstrap, or give this machine a registry for the official images" debootstrap
	fi
	ops_is_root || ops_die "building the Debian base needs root (debootstrap)" "hint: run make up as root once"
	local rootfs mirror
	mirror="$(images_debian_mirror)"
	rootfs="$(mktemp -d "${TMPDIR:-/tmp}/pgstack-rootfs.XXXXXX")"
	# shellcheck disable=SC2064 # expand now: the path is fixed
	trap "rm -rf '$rootfs'" RETURN
	ops_step "building $tag with debootstrap from $mirror (a minute or two)"
	# its phases; the per-package lines show only as the latest line, every OPS_PROGRESS_SECONDS
	local phases='^(I: (Retrieving (In)?Release|Retrieving Packages|Resolving|Checking component|Installing core|Unpacking (required|the base)|Configuring (required|the base)|Base system)|[EW]: )'
	local log="$OPS_STATE_DIR/logs/debootstrap-$suite.log"
	ops_run_with_progress "$phases" "$log" debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" ||
		ops_die "debootstrap of $suite failed" "hint: read $log"
	# Keep images small: no apt lists or caches in the base.
	rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
	tar -C "$rootfs" --numeric-owner -c . |
		docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$tag" >/dev/null
	ops_note "imported $tag"
}

# usage: images_local_ca_context DIR
# A TLS-intercepting proxy's CA lives among the host's local certificates: images that run pip must trust
# it. Copies whatever the host has there (often nothing) into DIR/local-ca.
images_local_ca_context() {
	mkdir -p "$1/local-ca"
	if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
		cp /usr/local/share/ca-certificates/*.crt "$1/local-ca/"
	fi
}

# usage: images_build_python
images_build_python() {
	if images_present "$STANDIN_PYTHON_IMAGE"; then
		ops_note "$STANDIN_PYTHON_IMAGE already built"
		return 0
	fi
	local context
	context="$(mktemp -d "${TMPDIR:-/tmp}/pgstack-python.XXXXXX")"
	# shellcheck disable=SC2064 # expand now: the path is fixed
	trap "rm -rf '$context'" RETURN
	cp "$OPS_ROOT/ops/images/python/Dockerfile" "$context/"
	images_local_ca_context "$context"
	images_build "$STANDIN_PYTHON_IMAGE" "$context" "BASE_IMAGE=$STANDIN_DEBIAN_IMAGE"
}

# usage: images_build_postgres
images_build_postgres() {
	if images_present "$STANDIN_POSTGRES_IMAGE"; then
		ops_note "$STANDIN_POSTGRES_IMAGE already built"
		return 0
	fi
	local context
	context="$(mktemp -d "${TMPDIR:-/tmp}/pgstack-postgres.XXXXXX")"
	# shellcheck disable=SC2064 # expand now: the path is fixed
	trap "rm -rf '$context'" RETURN
	cp "$OPS_ROOT/ops/images/postgres/Dockerfile" "$OPS_ROOT/ops/images/postgres/docker-entrypoint.sh" "$context/"
	images_local_ca_context "$context"
	images_build "$STANDIN_POSTGRES_IMAGE" "$context" "BASE_IMAGE=$STANDIN_DEBIAN_SID_IMAGE" \
		"PG_DEBIAN_VERSION=$POSTGRES_DEBIAN_VERSION"
}

# usage: images_build_postgres_next  -> prints the image's name
# PostgreSQL POSTGRES_NEXT_MAJOR with the current major's server binaries beside it (pg_upgrade runs both).
images_build_postgres_next() {
	if ! images_present "$STANDIN_POSTGRES_NEXT_IMAGE"; then
		images_build_debian sid "$STANDIN_DEBIAN_SID_IMAGE" >&2
		local context
		context="$(mktemp -d "${TMPDIR:-/tmp}/pgstack-postgres.XXXXXX")"
		# shellcheck disable=SC2064 # expand now: the path is fixed
		trap "rm -rf '$context'" RETURN
		cp "$OPS_ROOT/ops/images/postgres/Dockerfile" "$OPS_ROOT/ops/images/postgres/docker-entrypoint.sh" "$context/"
		images_local_ca_context "$context"
		images_build "$STANDIN_POSTGRES_NEXT_IMAGE" "$context" "BASE_IMAGE=$STANDIN_DEBIAN_SID_IMAGE" \
			"PG_MAJOR=$POSTGRES_NEXT_MAJOR" "PG_VERSION=$POSTGRES_NEXT_VERSION" \
			"PG_DEBIAN_VERSION=$POSTGRES_NEXT_DEBIAN_VERSION" "PG_SUITE=$POSTGRES_NEXT_SUITE" \
			"PG_OLD_MAJOR=18" "PG_OLD_DEBIAN_VERSION=$POSTGRES_DEBIAN_VERSION" >&2
	fi
	printf '%s\n' "$STANDIN_POSTGRES_NEXT_IMAGE"
}

# usage: images_build_haproxy
images_build_haproxy() {
	if images_present "$STANDIN_HAPROXY_IMAGE"; then
		ops_note "$STANDIN_HAPROXY_IMAGE already built"
		return 0
	fi
	images_build "$STANDIN_HAPROXY_IMAGE" "$OPS_ROOT/ops/images/haproxy" "BASE_IMAGE=$STANDIN_DEBIAN_SID_IMAGE" \
		"HAPROXY_DEBIAN_VERSION=$HAPROXY_DEBIAN_VERSION"
}

# usage: images_build_caddy
images_build_caddy() {
	if images_present "$STANDIN_CADDY_IMAGE"; then
		ops_note "$STANDIN_CADDY_IMAGE already built"
		return 0
	fi
	images_build "$STANDIN_CADDY_IMAGE" "$OPS_ROOT/ops/images/caddy" "BASE_IMAGE=$STANDIN_DEBIAN_SID_IMAGE" \
		"CADDY_DEBIAN_VERSION=$CADDY_DEBIAN_VERSION"
}

# usage: images_build_monitoring
images_build_monitoring() {
	if images_present "$STANDIN_MONITORING_IMAGE"; then
		ops_note "$STANDIN_MONITORING_IMAGE already built"
		return 0
	fi
	images_build "$STANDIN_MONITORING_IMAGE" "$OPS_ROOT/ops/images/monitoring" \
		"BASE_IMAGE=$STANDIN_DEBIAN_SID_IMAGE" "PROMETHEUS_DEBIAN_VERSION=$PROMETHEUS_DEBIAN_VERSION" \
		"ALERTMANAGER_DEBIAN_VERSION=$ALERTMANAGER_DEBIAN_VERSION" \
		"POSTGRES_EXPORTER_DEBIAN_VERSION=$POSTGRES_EXPORTER_DEBIAN_VERSION"
}

# usage: images_write_choice POSTGRES_IMAGE PYTHON_IMAGE HAPROXY_IMAGE PGBOUNCER_PACKAGE CADDY_IMAGE PROMETHEUS_IMAGE \
#                            ALERTMANAGER_IMAGE POSTGRES_EXPORTER_IMAGE
images_write_choice() {
	mkdir -p "$OPS_STATE_DIR"
	printf 'POSTGRES_IMAGE=%s\nPYTHON_IMAGE=%s\nHAPROXY_IMAGE=%s\nPGBOUNCER_PACKAGE=%s\nCADDY_IMAGE=%s\nPROMETHEUS_IMAGE=%s\nALERTMANAGER_IMAGE=%s\nPOSTGRES_EXPORTER_IMAGE=%s\n' \
		"$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" >"$OPS_STATE_DIR/images.env"
	ops_step "base images: postgres=$1 python=$2 haproxy=$3 caddy=$5 prometheus=$6 alertmanager=$7 postgres-exporter=$8"
}

images_main() {
	mkdir -p "$OPS_STATE_DIR"
	if [[ "${1:-}" == --postgres-major ]]; then
		[[ "${2:-}" == "$POSTGRES_NEXT_MAJOR" ]] ||
			ops_die "no image for PostgreSQL ${2:-?}: the next major release this checkout builds is $POSTGRES_NEXT_MAJOR" \
				"hint: ops/images.sh --postgres-major $POSTGRES_NEXT_MAJOR"
		images_build_postgres_next
		return 0
	fi
	if [[ -n "${POSTGRES_IMAGE:-}" && -n "${PYTHON_IMAGE:-}" ]]; then
		ops_note "using POSTGRES_IMAGE=$POSTGRES_IMAGE and PYTHON_IMAGE=$PYTHON_IMAGE from the environment"
		images_write_choice "$POSTGRES_IMAGE" "$PYTHON_IMAGE" "${HAPROXY_IMAGE:-$OFFICIAL_HAPROXY_IMAGE}" \
			"${PGBOUNCER_PACKAGE:-pgbouncer}" "${CADDY_IMAGE:-$OFFICIAL_CADDY_IMAGE}" \
			"${PROMETHEUS_IMAGE:-$OFFICIAL_PROMETHEUS_IMAGE}" "${ALERTMANAGER_IMAGE:-$OFFICIAL_ALERTMANAGER_IMAGE}" \
			"${POSTGRES_EXPORTER_IMAGE:-$OFFICIAL_POSTGRES_EXPORTER_IMAGE}"
		return 0
	fi
	ops_step "choosing base images"
	local scale=0 tls=0 monitoring=0
	if ops_profile scale; then
		scale=1
	fi
	if ops_profile tls; then
		tls=1
	fi
	if ops_profile monitoring; then
		monitoring=1
	fi
	if [[ "${1:-}" != "--offline" ]] && images_pull_official; then
		if ((scale)) && ! images_present "$OFFICIAL_HAPROXY_IMAGE"; then
			docker pull "$OFFICIAL_HAPROXY_IMAGE" >/dev/null || ops_die "unable to pull $OFFICIAL_HAPROXY_IMAGE"
		fi
		if ((tls)) && ! images_present "$OFFICIAL_CADDY_IMAGE"; then
			docker pull "$OFFICIAL_CADDY_IMAGE" >/dev/null || ops_die "unable to pull $OFFICIAL_CADDY_IMAGE"
		fi
		if ((monitoring)); then
			local image
			for image in "$OFFICIAL_PROMETHEUS_IMAGE" "$OFFICIAL_ALERTMANAGER_IMAGE" "$OFFICIAL_POSTGRES_EXPORTER_IMAGE"; do
				images_present "$image" || docker pull "$image" >/dev/null || ops_die "unable to pull $image"
			done
		fi
		images_write_choice "$OFFICIAL_POSTGRES_IMAGE" "$OFFICIAL_PYTHON_IMAGE" "$OFFICIAL_HAPROXY_IMAGE" pgbouncer \
			"$OFFICIAL_CADDY_IMAGE" "$OFFICIAL_PROMETHEUS_IMAGE" "$OFFICIAL_ALERTMANAGER_IMAGE" \
			"$OFFICIAL_POSTGRES_EXPORTER_IMAGE"
		return 0
	fi
	images_build_debian bookworm "$STANDIN_DEBIAN_IMAGE"
	images_build_python
	images_build_debian sid "$STANDIN_DEBIAN_SID_IMAGE"
	images_build_postgres
	if ((scale)); then
		images_build_haproxy
	fi
	if ((tls)); then
		images_build_caddy
	fi
	if ((monitoring)); then
		images_build_monitoring
	fi
	images_write_choice "$STANDIN_POSTGRES_IMAGE" "$STANDIN_PYTHON_IMAGE" "$STANDIN_HAPROXY_IMAGE" \
		"$PGBOUNCER_STANDIN_PACKAGE" "$STANDIN_CADDY_IMAGE" "$STANDIN_MONITORING_IMAGE" "$STANDIN_MONITORING_IMAGE" \
		"$STANDIN_MONITORING_IMAGE"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	images_main "$@"
fi
