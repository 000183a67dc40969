#!/usr/bin/env bash
# Shared pieces of the DSR lab (glb-director's tests/lib/testlib.sh habit): names, addresses, state,
# and the clean-up every script relies on. Source it; it sets `set -euo pipefail`.
#
# Everything lives in network namespaces named l4lb-*, joined by veth pairs created directly inside
# them, never in (or connected to) the host's namespace; all addresses are documentation ranges
# (RFC 5737): clients 198.51.100.0/24, router–director links in 192.0.2.0/25 (one /25 with a single
# director; a /30 per director with several), VIP 192.0.2.200, backends 203.0.113.0/24. Processes started inside a namespace are recorded by PID in $LAB_STATE/pids and
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
DIRECTOR_PREFIX=l4lb-director
DIRECTOR_NS=$DIRECTOR_PREFIX
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
MAX_DIRECTORS=4
# BGP between the router and the directors (lab/up.sh --routing bgp): eBGP, one AS for all directors.
ROUTER_AS=65000
DIRECTOR_AS=65001
BIRD_DIR="$LAB_STATE/bird"

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

# Director I of N (1-based). One director keeps the single-director names and /25 link; with several,
# director I is l4lb-directorI on its own /30: router side 192.0.2.(4I-3), director 192.0.2.(4I-2).
director_ns() { if [ "$2" -eq 1 ]; then echo "$DIRECTOR_PREFIX"; else echo "$DIRECTOR_PREFIX$1"; fi; }
director_ip() { echo "192.0.2.$((4 * $1 - 2))"; }
router_director_ip() { echo "192.0.2.$((4 * $1 - 3))"; }
director_prefix() { if [ "$1" -eq 1 ]; then echo 25; else echo 30; fi; }
# The router's end of director I's link.
router_director_dev() { if [ "$2" -eq 1 ]; then echo r-director; else echo "r-d$1"; fi; }
# Director I's address on the backends' bridge (l2 mode).
director_lan_ip() { echo "203.0.113.$((1 + $1))"; }

# Every l4lb lab namespace that exists now, one a line.
lab_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^(l4lb-client|l4lb-router|l4lb-director[0-9]*|${BACKEND_PREFIX}[0-9]+)$" || true; }

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

require_tools() {
  [ "$(id -u)" -eq 0 ] || die "the lab needs root (namespaces, nft); run it with sudo"
  local tool
  for tool in ip nft node iperf3; do command -v "$tool" >/dev/null || die "missing tool: $tool"; done
  [ -f "$REPO_DIR/dist/cli.js" ] || die "dist/cli.js is missing: run \`npm run build\` first"
}

# BIRD 2 (Debian package bird2) runs the BGP sessions of `lab/up.sh --routing bgp`.
require_bird() {
  local tool
  for tool in bird birdc; do
    command -v "$tool" >/dev/null || die "missing tool: $tool (BIRD 2, needed by --routing bgp): install the Debian package bird2 (apt-get install bird2)"
  done
  bird --version 2>&1 | grep -q 'BIRD version 2\.' || die "bird is not BIRD 2 ($(bird --version 2>&1 | head -1)): install the Debian package bird2"
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
  # A single-director lab (lab.env without DIRECTORS) has one director namespace, DIRECTOR_NS.
  DIRECTORS=${DIRECTORS:-1}
  ROUTING=${ROUTING:-static}
  BFD=${BFD:-off}
  IFS=, read -r -a DIRECTOR_NAMESPACES <<<"$DIRECTOR_NS"
}

# Temporary files and client processes of one script run, removed by the EXIT trap of that script.
RUN_TMP=""
RUN_PIDS=()
run_tmp() { RUN_TMP=$(mktemp -d /tmp/l4lb-lab.XXXXXX); }
# Stops the processes in RUN_PIDS, by PID, and waits for them.
stop_run_pids() {
  local pid
  for pid in "${RUN_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  RUN_PIDS=()
}
run_cleanup() {
  stop_run_pids
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

# --- routing to the VIP: the router's route and BIRD (lab/up.sh --routing bgp) ----------------------

# The router's devices towards directors in its route to the VIP, sorted, one a line (none: no route).
route_devs() { in_ns "$ROUTER_NS" ip route show "$VIP/32" | grep -o 'dev [^ ]*' | awk '{print $2}' | sort; }

# Waits until the router's route to the VIP has $1 nexthops, for at most $2 seconds.
wait_route_nexthops() {
  local want=$1 seconds=$2 i
  for i in $(seq 1 $((seconds * 10))); do
    [ "$(route_devs | wc -l)" -eq "$want" ] && return 0
    sleep 0.1
  done
  return 1
}

# BIRD timers (tuned; see docs/scale-out.md): keepalive 1 s, hold 3 s; BIRD's default restart timers
# keep a director that came back out of the route for 45–60 s, these bring it back in under a second.
BIRD_SESSION_TIMERS='hold time 3; keepalive time 1; connect delay time 1; connect retry time 2; error wait time 1, 10;'
BIRD_BFD_TIMERS='min rx interval 100 ms; min tx interval 100 ms; multiplier 3;'

# The router's BIRD config for $1 directors, BFD $2 (on|off): one eBGP session per director, and a
# kernel protocol that merges the directors' equal routes into one multipath route.
write_bird_router_conf() {
  local count=$1 bfd=$2 d
  echo "# Written by lab/up.sh: the lab router's BIRD 2 ($count directors, BFD $bfd)."
  echo "log stderr all;"
  echo "router id $ROUTER_CLIENT_IP;"
  echo "protocol device { }"
  echo "protocol kernel {"
  echo "	ipv4 { import none; export all; };"
  echo "	merge paths on;	# one multipath route over every director; without it, one nexthop only"
  echo "}"
  if [ "$bfd" = on ]; then
    printf 'protocol bfd {\n\tinterface "r-d*" { %s };\n}\n' "$BIRD_BFD_TIMERS"
  fi
  echo "template bgp director {"
  echo "	local as $ROUTER_AS;"
  echo "	$BIRD_SESSION_TIMERS"
  echo "	bfd $bfd;"
  echo "	ipv4 { import where net = $VIP/32; export none; };"
  echo "}"
  for d in $(seq 1 "$count"); do
    echo "protocol bgp director$d from director { neighbor $(director_ip "$d") as $DIRECTOR_AS; }"
  done
}

# Director $1's (of $2) BIRD config, BFD $3: announces the VIP to the router while its static
# protocol `vip` is enabled — disabled at start; lab/director.sh announce|withdraw turns it on and
# off. No kernel protocol: BIRD never touches the director's forwarding table.
write_bird_director_conf() {
  local d=$1 count=$2 bfd=$3
  echo "# Written by lab/up.sh: director $d's BIRD 2 (BFD $bfd)."
  echo "log stderr all;"
  echo "router id $(director_ip "$d");"
  echo "protocol device { }"
  echo "protocol static vip { disabled yes; ipv4; route $VIP/32 blackhole; }"
  if [ "$bfd" = on ]; then
    printf 'protocol bfd {\n\tinterface "d-up" { %s };\n}\n' "$BIRD_BFD_TIMERS"
  fi
  echo "protocol bgp uplink {"
  echo "	local as $DIRECTOR_AS; neighbor $(router_director_ip "$d") as $ROUTER_AS;"
  echo "	$BIRD_SESSION_TIMERS"
  echo "	bfd $bfd;"
  echo "	ipv4 { import none; export where net = $VIP/32; };"
  echo "}"
}

bird_socket() { echo "$BIRD_DIR/$1.ctl"; }

# Starts BIRD named $2 (router, directorN) in namespace $1 with its config, control socket and PID
# file in $BIRD_DIR; waits until its control socket answers.
start_bird() {
  local ns=$1 name=$2 i
  start_in_ns "$ns" "bird-$name" bird -f -c "$BIRD_DIR/$name.conf" -s "$(bird_socket "$name")" -P "$BIRD_DIR/$name.pid"
  for i in $(seq 1 50); do
    birdc -s "$(bird_socket "$name")" show status >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "BIRD $name did not answer on $(bird_socket "$name"): $(cat "$LAB_STATE/bird-$name.log")"
}

# Loopback experiments (lab/paws-snat.sh, lab/nat-layout-cost.sh): one namespace, nothing but its
# loopback, an nginx answering `200 ok`, wrk. Each script removes what it made in its EXIT trap.

# Creates namespace $1 with loopback up and the wide port range a connection-rate run needs.
loop_ns_up() {
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip netns exec "$1" sysctl -q -w net.ipv4.ip_local_port_range="1024 65000"
}

# Starts nginx (one worker, `200 ok`, no logs) in namespace $1 on 127.0.0.1:$3, its files under
# directory $2; records its PID in RUN_PIDS (stopped by run_cleanup) and waits until it listens.
start_nginx_ok() {
  local ns=$1 dir=$2 port=$3
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
daemon off;
events { worker_connections 8192; }
worker_rlimit_nofile 16384;
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path $dir/cb; proxy_temp_path $dir/px; fastcgi_temp_path $dir/fc;
  uwsgi_temp_path $dir/uw; scgi_temp_path $dir/sc;
  server { listen 127.0.0.1:$port backlog=4096; location / { default_type text/plain; return 200 "ok\n"; } }
}
CONF
  ip netns exec "$ns" nginx -p "$dir" -c "$dir/nginx.conf" 9<&- &
  RUN_PIDS+=("$!")
  wait_listening "$ns" "$port"
}

# Requests/s of wrk (2 threads, 64 connections, $3 seconds) in namespace $1 against
# http://127.0.0.1:$2/; with $4 = close, each request on a new connection (`Connection: close`).
wrk_rate() {
  local ns=$1 port=$2 seconds=$3 header=()
  [ "${4:-}" != close ] || header=(-H 'Connection: close')
  ip netns exec "$ns" wrk -t2 -c64 -d"${seconds}s" "${header[@]}" "http://127.0.0.1:$port/" |
    awk '/Requests\/sec/ { printf "%d", $2 }'
}

# The options and preconditions of a loopback experiment: sets ROUNDS (--rounds, 1..20, default 3)
# and SECONDS_PER_RUN (--seconds, 1..60, default 4) from the arguments after $1 (the tools it needs,
# space-separated); dies with the script's usage on anything else, without root, a missing tool or
# an unbuilt dist/.
loop_experiment_args() {
  local tools=$1 tool; shift
  ROUNDS=3
  SECONDS_PER_RUN=4
  while [ $# -gt 0 ]; do
    case "$1" in
      --rounds) ROUNDS=${2:-}; shift 2 ;;
      --seconds) SECONDS_PER_RUN=${2:-}; shift 2 ;;
      *) die "unknown argument \"$1\" (usage: $(basename "$0") [--rounds N] [--seconds S])" ;;
    esac
  done
  [[ "$ROUNDS" =~ ^[0-9]+$ ]] && [ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 20 ] || die "--rounds must be 1..20"
  [[ "$SECONDS_PER_RUN" =~ ^[0-9]+$ ]] && [ "$SECONDS_PER_RUN" -ge 1 ] && [ "$SECONDS_PER_RUN" -le 60 ] || die "--seconds must be 1..60"
  [ "$(id -u)" -eq 0 ] || die "needs root (it creates network namespaces and loads nft tables in them)"
  for tool in $tools; do command -v "$tool" >/dev/null || die "$tool not found"; done
  [ -f "$REPO_DIR/dist/cli.js" ] || die "dist/cli.js missing: run npm run build first"
}
