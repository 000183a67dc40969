#!/usr/bin/env bash
# Removes everything lab/up.sh made: each director first withdraws the VIP (its hook, as before any
# table is removed), then the processes it started (backend services, BIRD) are stopped by recorded
# PID, and every l4lb-* lab namespace goes with its links and nft tables, and the state directory.
# Idempotent; also cleans up after a failed or interrupted run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ "$(id -u)" -eq 0 ] || die "the lab needs root; run it with sudo"
bird_pids=()
if [ -f "$LAB_STATE/routing.env" ]; then
  # shellcheck disable=SC1091
  . "$LAB_STATE/routing.env"
  for d in $(seq 1 "${DIRECTORS:-1}"); do
    L4LB_LAB_LOCK_HELD=1 "$LAB_DIR/director.sh" withdraw "$d" >/dev/null 2>&1 || log "director $d: could not withdraw the VIP (removing it anyway)"
  done
fi
for pidfile in "$BIRD_DIR"/*.pid; do
  [ -f "$pidfile" ] && bird_pids+=("$(cat "$pidfile")")
done
lab_teardown
left=$(lab_namespaces)
[ -z "$left" ] || die "namespaces left behind: $left"
for pid in "${bird_pids[@]}"; do
  ! kill -0 "$pid" 2>/dev/null || die "BIRD (PID $pid) still runs"
done
log "lab removed"
