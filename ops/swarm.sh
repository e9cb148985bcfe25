#!/usr/bin/env bash
# The stack on Docker Swarm (compose/stack.yaml): `make swarm-up` deploys it on the Swarm this Docker CLI talks
# to (DOCKER_HOST, or the local daemon, which must be a manager), `make swarm-down` removes it, keeping its
# volumes. Settings come from the environment, then compose/.env (`docker stack deploy` reads no .env file).
#   SWARM_STACK        the stack's name (default pgstack)
#   SWARM_WAIT_TIMEOUT seconds swarm-up waits for every service (default 600)
# On a one-node Swarm, the node gets both placement labels (pgstack.postgres=primary, pgstack.standby=true)
# when no node has them; with more nodes, label them yourself (docs/operations.md, "Docker Swarm").
# usage: ops/swarm.sh up|down
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SWARM_FILE="$OPS_ROOT/compose/stack.yaml"
SWARM_STACK="${SWARM_STACK:-pgstack}"
SWARM_LABELS=("pgstack.postgres=primary" "pgstack.standby=true")

# usage: swarm_require_manager
swarm_require_manager() {
	local state
	state="$(docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}' 2>/dev/null)" ||
		ops_die "no Docker daemon answers${DOCKER_HOST:+ at $DOCKER_HOST}" "hint: start Docker, or set DOCKER_HOST to a Swarm manager"
	[[ "$state" == "active true" ]] || ops_die "this Docker daemon is not a Swarm manager (swarm: $state)" \
		"hint: docker swarm init --advertise-addr <this node's address> (or point DOCKER_HOST at a manager); other nodes then run the docker swarm join command it prints"
}

# usage: swarm_export_settings
# compose/.env's NAME=value lines, exported unless the environment sets them (data, never sourced).
swarm_export_settings() {
	[[ -f "$OPS_ENV_FILE" ]] || return 0
	local line name
	while IFS= read -r line; do
		[[ "$line" =~ ^[A-Z][A-Z0-9_]*= ]] || continue
		name="${line%%=*}"
		if [[ -z "${!name+set}" ]]; then
			export "$name=${line#*=}"
		fi
	done <"$OPS_ENV_FILE"
}

# usage: swarm_check_images
# `docker stack deploy` builds nothing and no registry may answer: the images must be on this node already.
swarm_check_images() {
	local image missing=()
	for image in "${POSTGRES_IMAGE:-postgres:18.6-bookworm}" "${HAPROXY_IMAGE:-haproxy:3.2}" \
		"pgstack/mcp:${STACK_VERSION:-dev}" "pgstack/backup:${STACK_VERSION:-dev}"; do
		docker image inspect "$image" >/dev/null 2>&1 || missing+=("$image")
	done
	((${#missing[@]} == 0)) || ops_die "image(s) missing on this node: ${missing[*]}" \
		"hint: build them here (make images, then ops/compose.sh build mcp backup), and on every node that may run a task: docker save ... | docker load, or a registry"
}

# usage: swarm_label_nodes
swarm_label_nodes() {
	local label nodes self
	self="$(docker info --format '{{.Swarm.NodeID}}')"
	for label in "${SWARM_LABELS[@]}"; do
		nodes="$(docker node ls -q --filter "node.label=$label")"
		if [[ -z "$nodes" ]]; then
			docker node update --label-add "$label" "$self" >/dev/null
			ops_note "labelled this node $label (no node had it); move it with docker node update --label-rm/--label-add"
		fi
	done
}

# usage: swarm_wait  -> returns when every service of the stack runs all its replicas, healthy
swarm_wait() {
	local timeout="${SWARM_WAIT_TIMEOUT:-600}" started="$EPOCHSECONDS" line pending reported=0
	ops_step "waiting for the stack's services (at most ${timeout}s)"
	while true; do
		pending=""
		while IFS= read -r line; do
			local name="${line%% *}" replicas="${line#* }"
			local running="${replicas%%/*}" wanted="${replicas#*/}"
			wanted="${wanted%% *}"
			if [[ "$running" != "$wanted" || "$wanted" == 0 ]]; then
				pending+=" $name($replicas)"
			fi
		done < <(docker service ls --filter "label=com.docker.stack.namespace=$SWARM_STACK" --format '{{.Name}} {{.Replicas}}')
		# a task is running before its health check passes: count healthy containers of this node too
		if [[ -z "$pending" ]] && ! docker ps --filter "label=com.docker.stack.namespace=$SWARM_STACK" \
			--format '{{.Status}}' | grep -Eq '\((health: starting|unhealthy)\)'; then
			ops_note "every service runs, healthy, after $(ops_duration $((EPOCHSECONDS - started)))"
			return 0
		fi
		if ((EPOCHSECONDS - started >= timeout)); then
			docker stack ps --no-trunc "$SWARM_STACK" >&2 || : # ignore: only a diagnosis
			ops_die "the stack did not come up within ${timeout}s:${pending:- a container is not healthy}" \
				"hint: docker service logs ${SWARM_STACK}_<service> shows why"
		fi
		if ((EPOCHSECONDS - reported >= 10)); then
			reported="$EPOCHSECONDS"
			ops_progress $((EPOCHSECONDS - started)) "waiting for:${pending:- health checks}"
		fi
		sleep 2
	done
}

swarm_up() {
	swarm_require_manager
	"$OPS_ROOT/ops/secrets.sh"
	ops_load_image_choice
	swarm_export_settings
	swarm_check_images
	swarm_label_nodes
	ops_step "deploying stack $SWARM_STACK (compose/stack.yaml)"
	(cd "$OPS_ROOT/compose" && docker stack deploy --prune --resolve-image never --detach=true \
		--compose-file "$SWARM_FILE" "$SWARM_STACK") >&2
	swarm_wait
	cat >&2 <<-EOM
		==> stack $SWARM_STACK is up on Swarm, after $(ops_elapsed)
		    MCP         port $(ops_setting MCP_PORT 8080) of every node, /mcp: HAProxy there, $(ops_setting MCP_REPLICAS 3) replicas over the nodes (MCP_ALLOWED_HOSTS must name the address clients use)
		    HAProxy     port $(ops_setting HAPROXY_STATS_PORT 8404) of every node, /stats and /metrics
		    PostgreSQL  not published: docker exec into the postgres task on the node labelled pgstack.postgres=primary
		    services    docker stack ps $SWARM_STACK
	EOM
}

swarm_down() {
	swarm_require_manager
	ops_step "removing stack $SWARM_STACK (its volumes stay)"
	docker stack rm "$SWARM_STACK" >&2
	local started="$EPOCHSECONDS"
	# `docker stack rm` returns at once; its containers and networks go in the background
	while [[ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$SWARM_STACK")$(docker network ls -q --filter "label=com.docker.stack.namespace=$SWARM_STACK")" ]]; do
		if ((EPOCHSECONDS - started >= 120)); then
			ops_die "stack $SWARM_STACK still has containers or networks after 120s" "hint: docker stack ps $SWARM_STACK"
		fi
		sleep 1
	done
	ops_note "stack $SWARM_STACK removed after $(ops_duration $((EPOCHSECONDS - started)))"
}

case "${1:-}" in
	up) swarm_up ;;
	down) swarm_down ;;
	*) ops_usage "usage: ops/swarm.sh up|down" ;;
esac
