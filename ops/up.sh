#!/usr/bin/env bash
# `make up`: from a bare machine to a healthy stack, printing each step.
#   1. Docker Engine and Compose (installed and started when missing, on Debian/Ubuntu as root)
#   2. secrets (generated once) and compose/.env (copied from .env.example once)
#   3. base images (official ones, or offline stand-ins built once)
#   4. build the mcp and backup images, start everything, wait until every service is healthy
#      (in external mode, `make external`, mcp and backup only: the database is yours; with PROFILE=scale,
#      a hot standby, MCP_REPLICAS mcp replicas and HAProxy in front of them: compose/scale.yaml; with
#      PROFILE=tls, Caddy in front of mcp: compose/tls.yaml)
# usage: ops/up.sh
set -Eeuo pipefail
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=ops/releases.sh
source "$OPS_ROOT/ops/releases.sh"

# usage: up_check_offsite_secret  -> stops unless PROFILE=offsite's secret access key file has content
# Compose would only say that a secret's file is missing; this names the file and what goes in it.
up_check_offsite_secret() {
	local dir file
	dir="$(ops_secrets_dir)"
	file="$(ops_setting OFFSITE_SECRET_ACCESS_KEY_FILE "$dir/offsite_secret_access_key")"
	[[ -s "$file" ]] || ops_die "PROFILE=offsite needs the offsite target's secret access key in $file" \
		"hint: write the secret access key of BACKUP_OFFSITE_ACCESS_KEY_ID into $file (mode 0600, owner uid $OPS_SERVICE_UID)" \
		"hint: or leave offsite out of PROFILE: the stack then keeps its backups on this host only"
}

up_main() {
	up_start
	# what runs now, for make rollback after a later make upgrade
	ops_load_image_choice
	releases_record "$STACK_VERSION"
}

up_start() {
	if ops_profile tls && ops_profile scale; then
		ops_die "PROFILE=scale,tls is not supported yet: Caddy fronts the single mcp service, HAProxy the replicas" \
			"hint: PROFILE=tls for HTTPS, or PROFILE=scale with TLS terminated by a proxy of yours in front of HAProxy"
	fi
	"$OPS_ROOT/ops/docker-engine.sh"
	"$OPS_ROOT/ops/secrets.sh"
	if ops_profile offsite; then
		up_check_offsite_secret
	fi
	if [[ ! -f "$OPS_ENV_FILE" ]]; then
		cp "$OPS_ROOT/compose/.env.example" "$OPS_ENV_FILE"
		ops_note "created $OPS_ENV_FILE from .env.example"
	fi
	"$OPS_ROOT/ops/images.sh"
	ops_build_services
	if ops_external; then
		ops_step "starting mcp and backup against $(ops_external_target) (external mode: no bundled postgres)"
		local -a external_services
		read -r -a external_services <<<"$(up_services mcp backup)"
		"$OPS_ROOT/ops/compose.sh" up -d --remove-orphans "${external_services[@]}"
		"$OPS_ROOT/ops/wait-healthy.sh" "${external_services[@]}"
		cat >&2 <<-EOM
			==> the stack is up, after $(ops_elapsed)
			    PostgreSQL  yours: $(ops_external_target)  (make bundled, then make up, to use the stack's own)
			    MCP         $(up_mcp_endpoint)
			    secrets     compose/secrets/  (mode 0600)
			    backups     $(ops_setting BACKUP_SCHEDULE 'every 60 minutes')  (make backups, make restore-drill)
		EOM
		return 0
	fi
	# postgres first: its first start (initdb, demo data) is the long wait, and wait-healthy shows it
	ops_step "starting postgres (project ${COMPOSE_PROJECT_NAME:-pgstack})"
	"$OPS_ROOT/ops/compose.sh" up -d --remove-orphans postgres
	"$OPS_ROOT/ops/wait-healthy.sh" postgres
	if ops_profile scale; then
		up_scale
		return 0
	fi
	local -a services
	read -r -a services <<<"$(up_services mcp backup)"
	ops_step "starting ${services[*]}"
	"$OPS_ROOT/ops/compose.sh" up -d "${services[@]}"
	"$OPS_ROOT/ops/wait-healthy.sh" "${services[@]}"
	cat >&2 <<-EOM
		==> the stack is up, after $(ops_elapsed)
		    PostgreSQL  127.0.0.1:$(ops_setting PG_PORT 5432)  database app  (make psql, make psql ROLE=mcp_reader)
		    MCP         $(up_mcp_endpoint)
		    secrets     compose/secrets/  (mode 0600)
		    backups     $(ops_setting BACKUP_SCHEDULE 'every 60 minutes')  (make backups, make restore-drill)
	EOM
	if ops_profile monitoring; then
		printf '    Prometheus  http://127.0.0.1:%s  (alerts: compose/prometheus/alerts.yml)\n' \
			"$(ops_setting PROMETHEUS_PORT 9090)" >&2
		printf '    Alertmanager http://127.0.0.1:%s  (sends to %s)\n' "$(ops_setting ALERTMANAGER_PORT 9093)" \
			"$(if [[ -n "$(ops_setting BACKUP_WEBHOOK_URL '')" ]]; then echo BACKUP_WEBHOOK_URL; else echo 'nowhere: BACKUP_WEBHOOK_URL is not set'; fi)" >&2
	fi
}

# usage: up_mcp_endpoint  -> where clients reach MCP, and with what
up_mcp_endpoint() {
	if ops_profile tls; then
		local url
		url="$(ops_setting MCP_PUBLIC_URL "https://localhost:$(ops_setting MCP_TLS_PORT 8443)")"
		printf '%s/mcp  (TLS through Caddy; trust %s/ca.crt unless mcp_tls.crt is yours; make api-key NAME=...)' \
			"$url" "$(ops_secrets_dir)"
		return 0
	fi
	printf 'http://127.0.0.1:%s/mcp  (bearer key: compose/secrets/mcp_api_keys; make api-key NAME=...)' \
		"$(ops_setting MCP_PORT 8080)"
}

# usage: up_services SERVICE...  -> the services to start after postgres, PgBouncer first with PROFILE=pooler,
# Caddy last with PROFILE=tls
up_services() {
	if ops_profile pooler; then
		printf '%s ' pgbouncer
	fi
	printf '%s' "$*"
	if ops_profile tls; then
		printf ' %s' caddy
	fi
	if ops_profile monitoring; then
		printf ' %s' postgres-exporter alertmanager prometheus
	fi
	printf '\n'
}

# usage: up_scale  (postgres is healthy)
up_scale() {
	local secrets
	secrets="$(ops_secrets_dir)"
	if ! openssl x509 -noout -checkhost postgres-standby -in "$secrets/server.crt" 2>/dev/null | grep -q 'does match'; then
		ops_die "the server certificate $secrets/server.crt is not valid for postgres-standby (it predates PROFILE=scale)" \
			"hint: run make rotate-tls (a new certificate from the same CA, for every name in ops/secrets.sh), then make up PROFILE=scale"
	fi
	local has_role
	has_role="$("$OPS_ROOT/ops/psql.sh" postgres -tAc \
		"SELECT count(*) FROM pg_roles WHERE rolname = 'replicator' AND rolreplication" </dev/null)"
	if [[ "$has_role" != 1 ]]; then
		ops_die "the postgres data directory has no replicator role (it was initialised before hot standbys existed)" \
			"hint: create it as compose/initdb/10-roles.sh does, with the password in $secrets/replicator_password: make psql, then CREATE ROLE replicator LOGIN REPLICATION NOINHERIT CONNECTION LIMIT 5 PASSWORD '<that password>';"
	fi
	ops_step "starting the hot standby (pg_basebackup from postgres on its first start)"
	"$OPS_ROOT/ops/compose.sh" up -d postgres-standby
	"$OPS_ROOT/ops/wait-healthy.sh" postgres-standby
	local replicas
	replicas="$(ops_setting MCP_REPLICAS 3)"
	local -a services
	read -r -a services <<<"$(up_services mcp backup haproxy)"
	ops_step "starting ${services[*]} ($replicas mcp replicas)"
	"$OPS_ROOT/ops/compose.sh" up -d "${services[@]}"
	"$OPS_ROOT/ops/wait-healthy.sh" "${services[@]}"
	cat >&2 <<-EOM
		==> the stack is up (PROFILE=scale), after $(ops_elapsed)
		    PostgreSQL  127.0.0.1:$(ops_setting PG_PORT 5432)  database app (the primary); postgres-standby streams from it
		    MCP         http://127.0.0.1:$(ops_setting MCP_PORT 8080)/mcp  through HAProxy to $replicas replicas reading from the standby
		    HAProxy     http://127.0.0.1:$(ops_setting HAPROXY_STATS_PORT 8404)/stats  (Prometheus: /metrics)
		    secrets     compose/secrets/  (mode 0600)
		    backups     $(ops_setting BACKUP_SCHEDULE 'every 60 minutes')  (make backups, make restore-drill)
	EOM
}

up_main "$@"
