#!/usr/bin/env bash
# Runs a command with a Docker engine: uses a running dockerd, or starts
# Debian's dockerd (root) and stops it afterwards, only if it started it.
# Usage: bash scripts/with-dockerd.sh COMMAND [ARG ...]
set -euo pipefail
export PATH="/usr/bin:/usr/sbin:$PATH"  # Debian's docker CLI first (BuildKit built in)
started=""
if ! timeout 20 docker info >/dev/null 2>&1; then
  log="${MATID_DOCKERD_LOG:-/tmp/matid-dockerd.log}"
  dockerd >>"$log" 2>&1 &
  started=$!
  for _ in $(seq 120); do
    timeout 5 docker info >/dev/null 2>&1 && break
    kill -0 "$started" 2>/dev/null || { echo "with-dockerd: dockerd exited; see $log" >&2; exit 1; }
    sleep 0.5
  done
  timeout 5 docker info >/dev/null 2>&1 || { echo "with-dockerd: dockerd did not answer in 60 s; see $log" >&2; kill "$started"; exit 1; }
  echo "with-dockerd: started dockerd (pid $started)"
fi
stop() {
  if [ -n "$started" ]; then
    kill "$started" 2>/dev/null || true
    for _ in $(seq 120); do kill -0 "$started" 2>/dev/null || break; sleep 0.5; done
    echo "with-dockerd: stopped dockerd"
  fi
}
trap stop EXIT
"$@"
