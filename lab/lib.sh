#!/usr/bin/env bash
# Shared pieces of the DSR lab (glb-director's tests/lib/testlib.sh habit): names, addresses, state,
# and the clean-up every script relies on. Source it; it sets `set -euo pipefail`.
#
# Everything lives in network namespaces named l4lb-*, joined by veth pairs created directly inside
# them, never in (or connected to) the host's namespace; all addresses are documentation ranges
# (RFC 5737): clients 198.51.100.0/24, router–director link 192.0.2.0/25, VIP 192.0.2.200, backends
# 203.0.113.0/24. Processes started inside a namespace are recorded by PID in $LAB_STATE/pids and
# stopped by PID (they outlive `ip netns del`).
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/.." && pwd)"
LAB_STATE="${L4LB_LAB_STATE:-/run/l4lb-lab}"
LAB_ENV="$LAB_STATE/lab.env"
LAB_PIDS="$LAB_STATE/pids"
L4LB=(node "$REPO_DIR/dist/cli.js")

CLIENT_NS=l4lb-client
ROUTER_NS=l4lb-router
DIRECTOR_NS=l4lb-director
BACKEND_PREFIX=l4lb-be
CLIENT_IP=198.51.100.10
ROUTER_CLIENT_IP=198.51.100.1
ROUTER_DIRECTOR_IP=192.0.2.1
DIRECTOR_IP=192.0.2.2
ROUTER_LAN_IP=203.0.113.1
DIRECTOR_LAN_IP=203.0.113.2
VIP=192.0.2.200
PORT=80
BULK_PORT=5201
DSCP=10
TABLE_SIZE=251
HASH_SEED=19508
MAX_BACKENDS=8

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# One lab at a time on this machine, whichever checkout it runs from: the namespaces and
# $LAB_STATE are machine-wide. Each script holds an flock(1) on $LAB_LOCK (fd 9) until it exits; a
# caller that holds the lock for a whole sequence of scripts (test/lab.test.ts) says so with
# L4LB_LAB_LOCK_HELD=1 (flock(1)'s FLOCKER idiom). The empty lock file stays in /run/lock, a tmpfs,
# so that waiters always lock the same file. Long-lived processes must not inherit fd 9
# (start_in_ns closes it), or they would keep the lock.
LAB_LOCK=/run/lock/l4lb-lab.lock
if [ "$(id -u)" -eq 0 ] && [ "${L4LB_LAB_LOCK_HELD:-}" != 1 ] && command -v flock >/dev/null; then
  mkdir -p "$(dirname "$LAB_LOCK")"
  exec 9>>"$LAB_LOCK"
  flock --wait 600 9 || die "another lab run has held $LAB_LOCK for 10 minutes"
fi

backend_ip() { echo "203.0.113.$((10 + $1))"; }
backend_ns() { echo "${BACKEND_PREFIX}$1"; }

# Every l4lb lab namespace that exists now, one a line.
lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^(l4lb-client|l4lb-router|l4lb-director|${BACKEND_PREFIX}[0-9]+)$" || true; }

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

require_tools() {
  [ "$(id -u)" -eq 0 ] || die "the lab needs root (namespaces, nft); run it with sudo"
  local tool
  for tool in ip nft node iperf3; do command -v "$tool" >/dev/null || die "missing tool: $tool"; done
  [ -f "$REPO_DIR/dist/cli.js" ] || die "dist/cli.js is missing: run \`npm run build\` first"
}

# Starts "$@" inside namespace $1 in the background, output to $LAB_STATE/$2.log; records its PID.
start_in_ns() {
  local ns=$1 name=$2; shift 2
  ip netns exec "$ns" "$@" >"$LAB_STATE/$name.log" 2>&1 9<&- &
  echo "$! $name" >>"$LAB_PIDS"
}

# Waits (up to 10 s) until namespace $1 has a TCP listener on port $2.
wait_listening() {
  local ns=$1 port=$2 i
  for i in $(seq 1 100); do
    if ip netns exec "$ns" ss -Hltn "sport = :$port" | grep -q .; then return 0; fi
    sleep 0.1
  done
  die "nothing listens on port $port in $ns"
}

# Stops the processes recorded in $LAB_PIDS, by PID only.
stop_recorded() {
  [ -f "$LAB_PIDS" ] || return 0
  local pid name
  while read -r pid name; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
  done <"$LAB_PIDS"
  while read -r pid name; do
    [ -n "$pid" ] || continue
    local i
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done <"$LAB_PIDS"
  rm -f "$LAB_PIDS"
}

# Removes everything the lab made: its processes, namespaces (with their veths, bridge and nft
# tables) and state directory. Safe to run any number of times.
lab_teardown() {
  stop_recorded
  local ns
  for ns in $(lab_namespaces); do
    # A process the PID file missed (e.g. after a crash of up.sh) would keep the namespace busy.
    local pid
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$LAB_STATE"
}

load_env() {
  [ -f "$LAB_ENV" ] || die "no lab is up ($LAB_ENV missing): run lab/up.sh first"
  # shellcheck disable=SC1090
  . "$LAB_ENV"
  IFS=, read -r -a BACKEND_NAMESPACES <<<"$BACKEND_NS"
  IFS=, read -r -a BACKEND_NAMES <<<"$BACKENDS"
}

# Temporary files and client processes of one script run, removed by the EXIT trap of that script.
RUN_TMP=""
RUN_PIDS=()
run_tmp() { RUN_TMP=$(mktemp -d /tmp/l4lb-lab.XXXXXX); }
run_cleanup() {
  local pid
  for pid in "${RUN_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  RUN_PIDS=()
  [ -z "$RUN_TMP" ] || rm -rf "$RUN_TMP"
}

# Sum of rx+tx bytes over the interfaces of namespace $1 (loopback excluded).
ns_bytes() {
  ip netns exec "$1" sh -c 'total=0; for dev in /sys/class/net/*; do n=${dev##*/}; [ "$n" = lo ] && continue; total=$((total + $(cat $dev/statistics/rx_bytes) + $(cat $dev/statistics/tx_bytes))); done; echo $total'
}

# Packets of named counter $2 in table ip $1 of namespace $3.
counter_packets() {
  ip netns exec "$3" nft -j list counter ip "$1" "$2" | node -e 'let t="";process.stdin.on("data",d=>t+=d).on("end",()=>{const c=JSON.parse(t).nftables.find(e=>e.counter).counter;console.log(c.packets)})'
}
