#!/usr/bin/env bash
# Builds the DSR lab: client — router — director, and N backends behind the router, each in its own
# network namespace; renders the director's and backends' rules with `l4lb dsr` from a config it
# writes, loads them, and starts the backend services. Idempotent: an existing lab is removed first.
# On failure everything made so far is removed. Ends by printing KEY=VALUE lines (also in lab.env).
#
#   lab/up.sh [--mode l3|l2] [--backends N]
#
# l3: L3 DSR (DSCP): the director rewrites the destination to the backend's address and sets the
#     service's DSCP; packets reach the backends (another subnet) through the router.
# l2: L2 DSR: the director also sits on the backends' segment and policy-routes each flow, unchanged,
#     to its backend's MAC.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE=l3
COUNT=3
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE=${2:-}; shift 2 ;;
    --backends) COUNT=${2:-}; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown argument \"$1\" (usage: up.sh [--mode l3|l2] [--backends N])" ;;
  esac
done
case "$MODE" in l3|l2) ;; *) die "--mode must be l3 or l2, got \"$MODE\"" ;; esac
[[ "$COUNT" =~ ^[0-9]+$ ]] && [ "$COUNT" -ge 2 ] && [ "$COUNT" -le "$MAX_BACKENDS" ] || die "--backends must be 2..$MAX_BACKENDS, got \"$COUNT\""
require_tools

lab_teardown
mkdir -p "$LAB_STATE"
trap 'status=$?; if [ $status -ne 0 ]; then log "failed (exit $status): removing what was made"; lab_teardown; fi' EXIT

# --- namespaces and links --------------------------------------------------------------------
sysctls() { local ns=$1; shift; ip netns exec "$ns" sysctl -qw "$@"; }

for ns in "$CLIENT_NS" "$ROUTER_NS" "$DIRECTOR_NS"; do ip netns add "$ns"; done
for i in $(seq 1 "$COUNT"); do ip netns add "$(backend_ns "$i")"; done
for ns in $(lab_namespaces); do
  in_ns "$ns" ip link set lo up
  # Namespaces do not reliably inherit the host's sysctls: set every one the lab depends on.
  sysctls "$ns" net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.default.rp_filter=2 \
    net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
done
sysctls "$ROUTER_NS" net.ipv4.ip_forward=1
sysctls "$DIRECTOR_NS" net.ipv4.ip_forward=1

# veth pairs are created directly inside the namespaces: nothing touches the host's namespace.
ip link add eth0 netns "$CLIENT_NS" type veth peer name r-client netns "$ROUTER_NS"
ip link add d-up netns "$DIRECTOR_NS" type veth peer name r-director netns "$ROUTER_NS"
in_ns "$ROUTER_NS" ip link add br-be type bridge
in_ns "$CLIENT_NS" ip addr add "$CLIENT_IP/24" dev eth0
in_ns "$CLIENT_NS" ip link set eth0 up
in_ns "$CLIENT_NS" ip route add default via "$ROUTER_CLIENT_IP"
in_ns "$ROUTER_NS" ip addr add "$ROUTER_CLIENT_IP/24" dev r-client
in_ns "$ROUTER_NS" ip addr add "$ROUTER_DIRECTOR_IP/25" dev r-director
in_ns "$ROUTER_NS" ip addr add "$ROUTER_LAN_IP/24" dev br-be
for dev in r-client r-director br-be; do in_ns "$ROUTER_NS" ip link set "$dev" up; done
# The VIP lives behind the director; replies from it come back from the backends (loose rp_filter).
in_ns "$ROUTER_NS" ip route add "$VIP/32" via "$DIRECTOR_IP"
in_ns "$DIRECTOR_NS" ip addr add "$DIRECTOR_IP/25" dev d-up
in_ns "$DIRECTOR_NS" ip link set d-up up
in_ns "$DIRECTOR_NS" ip route add default via "$ROUTER_DIRECTOR_IP"
if [ "$MODE" = l2 ]; then
  ip link add d-lan netns "$DIRECTOR_NS" type veth peer name r-dlan netns "$ROUTER_NS"
  in_ns "$ROUTER_NS" ip link set r-dlan master br-be up
  in_ns "$DIRECTOR_NS" ip addr add "$DIRECTOR_LAN_IP/24" dev d-lan
  in_ns "$DIRECTOR_NS" ip link set d-lan up
fi
for dev in d-up d-lan; do
  in_ns "$DIRECTOR_NS" test -e "/proc/sys/net/ipv4/conf/$dev" && sysctls "$DIRECTOR_NS" "net.ipv4.conf.$dev.send_redirects=0"
done
for i in $(seq 1 "$COUNT"); do
  ns=$(backend_ns "$i")
  ip link add eth0 netns "$ns" type veth peer name "r-be$i" netns "$ROUTER_NS"
  in_ns "$ROUTER_NS" ip link set "r-be$i" master br-be up
  in_ns "$ns" ip addr add "$(backend_ip "$i")/24" dev eth0
  in_ns "$ns" ip link set eth0 up
  in_ns "$ns" ip route add default via "$ROUTER_LAN_IP"
done

# Router counters: requests towards the director, replies from the VIP arriving from the backends.
in_ns "$ROUTER_NS" nft -f - <<NFT
table ip l4lb_lab_router {}
delete table ip l4lb_lab_router
table ip l4lb_lab_router {
	counter to_director {}
	counter replies_from_backends {}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip daddr $VIP oifname "r-director" counter name to_director
		ip saddr $VIP iifname "br-be" counter name replies_from_backends
	}
}
NFT

# --- the l4lb config and the rules rendered from it --------------------------------------------
CONFIG="$LAB_STATE/l4lb.yaml"
{
  echo "# Written by lab/up.sh: the DSR lab's services (mode $MODE, $COUNT backends)."
  echo "services:"
  for svc in "web $PORT source-ip-port" "bulk $BULK_PORT source-ip"; do
    read -r name port key <<<"$svc"
    echo "  - name: $name"
    echo "    mode: dsr"
    echo "    vip: $VIP:$port"
    echo "    dscp: $DSCP"
    echo "    hashKey: $key"
    echo "    hashSeed: $HASH_SEED"
    echo "    tableSize: $TABLE_SIZE"
    echo "    backends:"
    for i in $(seq 1 "$COUNT"); do echo "      - { name: be$i, address: $(backend_ip "$i") }"; done
  done
} >"$CONFIG"

"${L4LB[@]}" dsr render -c "$CONFIG" --method "$MODE" >"$LAB_STATE/director.nft"
in_ns "$DIRECTOR_NS" nft -f "$LAB_STATE/director.nft"
if [ "$MODE" = l2 ]; then
  "${L4LB[@]}" dsr routes -c "$CONFIG" --device d-lan >"$LAB_STATE/director-routes.batch"
  in_ns "$DIRECTOR_NS" ip -batch "$LAB_STATE/director-routes.batch"
fi
for i in $(seq 1 "$COUNT"); do
  "${L4LB[@]}" dsr render-backend -c "$CONFIG" --backend "be$i" --method "$MODE" >"$LAB_STATE/be$i.sh"
  in_ns "$(backend_ns "$i")" sh "$LAB_STATE/be$i.sh"
done

# --- backend services ---------------------------------------------------------------------------
for i in $(seq 1 "$COUNT"); do
  ns=$(backend_ns "$i")
  start_in_ns "$ns" "be$i-service" node "$LAB_DIR/backend-service.mjs" "be$i" "$PORT"
  start_in_ns "$ns" "be$i-iperf3" iperf3 --server --port "$BULK_PORT"
done
for i in $(seq 1 "$COUNT"); do
  wait_listening "$(backend_ns "$i")" "$PORT"
  wait_listening "$(backend_ns "$i")" "$BULK_PORT"
done

names=""; namespaces=""
for i in $(seq 1 "$COUNT"); do names+="${names:+,}be$i"; namespaces+="${namespaces:+,}$(backend_ns "$i")"; done
cat >"$LAB_ENV" <<ENV
MODE=$MODE
VIP=$VIP
PORT=$PORT
BULK_PORT=$BULK_PORT
CLIENT_NS=$CLIENT_NS
CLIENT_IP=$CLIENT_IP
ROUTER_NS=$ROUTER_NS
DIRECTOR_NS=$DIRECTOR_NS
BACKEND_NS=$namespaces
BACKENDS=$names
SERVICE=web
BULK_SERVICE=bulk
CONFIG=$CONFIG
STATE_DIR=$LAB_STATE
ENV
cat "$LAB_ENV"
