#!/bin/sh
# Alertmanager for `make up PROFILE=monitoring` (compose/monitoring.yaml): writes its configuration to /tmp (a
# tmpfs: the container is read-only) and starts it. One route, to BACKUP_WEBHOOK_URL, the webhook the backup
# sidecar already reports failures to; the URL goes in a file of its own (`url_file`), so no quoting can break
# the YAML and it never shows in the configuration Alertmanager serves. Without a webhook the alerts are still
# grouped and shown on Alertmanager's API, and Prometheus's UI shows them firing.
# POSIX sh: the official image has busybox's, the offline stand-in dash.
set -eu

if [ -n "${BACKUP_WEBHOOK_URL:-}" ]; then
	case "$BACKUP_WEBHOOK_URL" in
	http://* | https://*) ;;
	*)
		echo "alertmanager: BACKUP_WEBHOOK_URL must be an http:// or https:// URL" >&2
		exit 2
		;;
	esac
	printf '%s' "$BACKUP_WEBHOOK_URL" >/tmp/webhook-url
	receiver='    webhook_configs:
      - url_file: /tmp/webhook-url
        send_resolved: true
        timeout: 10s'
else
	echo "alertmanager: BACKUP_WEBHOOK_URL is not set: alerts are grouped here and shown, not sent" >&2
	receiver=''
fi

cat >/tmp/alertmanager.yml <<CONFIG
route:
  receiver: webhook
  group_by: [alertname, job]
  group_wait: ${ALERTMANAGER_GROUP_WAIT:-30s}
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: webhook
${receiver}
CONFIG

exec alertmanager --config.file=/tmp/alertmanager.yml --storage.path=/alertmanager \
	--web.listen-address=:9093 --cluster.listen-address= "$@"
