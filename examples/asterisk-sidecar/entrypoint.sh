#!/bin/sh
# Entrypoint for an Asterisk container behind sipedge: runs Asterisk and, next to it, the registrant
# that announces this container in etcd under a lease. On SIGTERM (docker stop, pod deletion) the
# registrant marks the backend draining, waits for active calls to end, revokes its lease; only then
# is Asterisk stopped. If the container is killed outright, the lease expires after SIPEDGE_TTL seconds
# and the edge stops sending new calls here. Dialogs already on this box keep routing to it meanwhile.
set -eu

: "${SIPEDGE_ETCD:=http://etcd:2379}"                # comma-separated etcd endpoints
: "${SIPEDGE_SET:=default}"                          # dispatcher set
: "${SIPEDGE_PORT:=5060}"                            # PJSIP transport port
: "${SIPEDGE_IP:=$(hostname -i | awk '{print $1}')}" # an IP literal: the edge does no DNS
: "${SIPEDGE_WEIGHT:=1}"
: "${SIPEDGE_TTL:=10}"
: "${SIPEDGE_DRAIN_TIMEOUT:=300}"                    # keep below the orchestrator's grace period
: "${SIPEDGE_EDGE_ADMIN:=}"                          # optional, e.g. http://sipedge:8080

asterisk -f &                                        # foreground mode, as our child
ASTERISK_PID=$!

# Wait until Asterisk answers its CLI before announcing it.
i=0
until asterisk -rx 'core show version' >/dev/null 2>&1; do
  i=$((i + 1)); [ "$i" -gt 60 ] && { echo "asterisk did not start" >&2; exit 1; }
  sleep 1
done

set -- --etcd "$SIPEDGE_ETCD" --set "$SIPEDGE_SET" --uri "sip:${SIPEDGE_IP}:${SIPEDGE_PORT}" \
  --weight "$SIPEDGE_WEIGHT" --ttl "$SIPEDGE_TTL" --drain-timeout "$SIPEDGE_DRAIN_TIMEOUT" \
  --calls-command "asterisk -rx 'core show calls count'"
[ -n "$SIPEDGE_EDGE_ADMIN" ] && set -- "$@" --edge-admin "$SIPEDGE_EDGE_ADMIN"
# Credentials come from the environment, never from the command line (visible in ps).
[ -n "${SIPEDGE_ETCD_USERNAME:-}" ] && set -- "$@" --username "$SIPEDGE_ETCD_USERNAME" # password: SIPEDGE_ETCD_PASSWORD
[ -n "${SIPEDGE_ETCD_CACERT:-}" ] && set -- "$@" --cacert "$SIPEDGE_ETCD_CACERT"

# The installed binary itself, not `npx sipedge`: npx runs it under `npm exec` and `sh -c`, so
# REGISTRANT_PID would be npx's and a SIGTERM to it would leave the registrant running (lease kept,
# backend still "active" in etcd).
"${SIPEDGE_BIN:-sipedge}" register "$@" &
REGISTRANT_PID=$!

# Forward SIGTERM/SIGINT to the registrant only: Asterisk must keep serving calls while draining.
# (A second signal makes the registrant stop waiting for calls.)
trap 'kill -TERM "$REGISTRANT_PID" 2>/dev/null || true' TERM INT

# Poll rather than `wait`, so that an Asterisk crash is noticed too: then nobody is left to wait for,
# so the registrant gets two signals (draining, then no waiting) and the lease is revoked at once.
while kill -0 "$REGISTRANT_PID" 2>/dev/null; do
  if ! kill -0 "$ASTERISK_PID" 2>/dev/null; then
    echo "asterisk exited: deregistering now" >&2
    kill -TERM "$REGISTRANT_PID" 2>/dev/null || true
    sleep 1
    kill -TERM "$REGISTRANT_PID" 2>/dev/null || true
    wait "$REGISTRANT_PID" || true
    exit 1
  fi
  sleep 1
done

# Calls have ended (or the drain deadline passed) and the lease is revoked: stop Asterisk gracefully.
asterisk -rx 'core stop gracefully' >/dev/null 2>&1 || kill -TERM "$ASTERISK_PID" 2>/dev/null || true
wait "$ASTERISK_PID" || true
