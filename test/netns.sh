#!/bin/sh
# Run a command inside a private network namespace holding only loopback, so that no test
# (torture messages name foreign hosts) can send a packet off the machine. Falls back to the
# host namespace, with a warning, where unshare is not permitted (non-root without user namespaces).
if [ -z "$SIPEDGE_IN_NETNS" ] && command -v unshare >/dev/null 2>&1; then
  if unshare --net true 2>/dev/null; then
    exec env SIPEDGE_IN_NETNS=1 unshare --net sh -c 'ip link set lo up 2>/dev/null || ifconfig lo up; exec "$0" "$@"' "$@"
  elif unshare --user --map-root-user --net true 2>/dev/null; then
    exec env SIPEDGE_IN_NETNS=1 unshare --user --map-root-user --net sh -c 'ip link set lo up; exec "$0" "$@"' "$@"
  fi
  echo "netns.sh: cannot create a network namespace; running tests in the host namespace (loopback only by design)" >&2
fi
exec "$@"
