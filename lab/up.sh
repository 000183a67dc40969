#!/usr/bin/env bash
# Builds the DSR lab: client — router — director(s), and N backends behind the router, each in its own
# network namespace; renders the directors' and backends' rules with `l4lb dsr` from a config it
# writes, loads them, starts the backend services, and only then lets each director announce the VIP
# (lab/director.sh announce). Idempotent: an existing lab is removed first. On failure everything
# made so far is removed. Ends by printing KEY=VALUE lines (also in lab.env).
#
#   lab/up.sh [--mode l3|l2] [--backends N] [--directors N] [--routing static|bgp] [--bfd]
#
# l3: L3 DSR (DSCP): the director rewrites the destination to the backend's address and sets the
#     service's DSCP; packets reach the backends (another subnet) through the router.
# l2: L2 DSR: the director also sits on the backends' segment and policy-routes each flow, unchanged,
#     to its backend's MAC.
# --directors N (1–4): N identical directors, each on its own link to the router, all loaded with the
#     same ruleset; the router spreads flows over them by ECMP, hashing the 5-tuple
#     (fib_multipath_hash_policy=3, fields 0x37). One director (the default) is the original lab.
# --routing static: the router has a static route to the VIP (multipath with several directors); it
#     never notices a dead director. bgp: BIRD 2 in the router and every director; each director
#     announces the VIP over eBGP and the router installs one multipath route (merge paths on).
# --bfd (with bgp): BFD 100 ms × 3 on every session, so a dead director is noticed in ~0.3 s
#     instead of the 3 s hold time.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE=l3
COUNT=3
DIRECTORS=1
ROUTING=static
BFD=off
usage="usage: up.sh [--mode l3|l2] [--backends N] [--directors N] [--routing static|bgp] [--bfd]"
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE=${2:-}; shift 2 ;;
    --backends) COUNT=${2:-}; shift 2 ;;
    --directors) DIRECTORS=${2:-}; shift 2 ;;
    --routing) ROUTING=${2:-}; shift 2 ;;
    --bfd) BFD=on; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) die "unknown argument \"$1\" ($usage)" ;;
  esac
done
case "$MODE" in l3|l2) ;; *) die "--mode must be l3 or l2, got \"$MODE\"" ;; esac
[[ "$COUNT" =~ ^[0-9]+$ ]] && [ "$COUNT" -ge 2 ] && [ "$COUNT" -le "$MAX_BACKENDS" ] || die "--backends must be 2..$MAX_BACKENDS, got \"$COUNT\""
[[ "$DIRECTORS" =~ ^[0-9]+$ ]] && [ "$DIRECTORS" -ge 1 ] && [ "$DIRECTORS" -le "$MAX_DIRECTORS" ] || die "--directors must be 1..$MAX_DIRECTORS, got \"$DIRECTORS\""
case "$ROUTING" in static|bgp) ;; *) die "--routing must be static or bgp, got \"$ROUTING\"" ;; esac
[ "$BFD" = off ] || [ "$ROUTING" = bgp ] || die "--bfd needs --routing bgp (a static route has no failure detection)"
require_tools
[ "$ROUTING" != bgp ] || require_bird
# The original single-director lab, unchanged; anything else is the scale-out lab (docs/scale-out.md).
SCALE_OUT=0
[ "$DIRECTORS" -eq 1 ] && [ "$ROUTING" = static ] || SCALE_OUT=1

lab_teardown
mkdir -p "$LAB_STATE"
trap 'status=$?; if [ $status -ne 0 ]; then log "failed (exit $status): removing what was made"; lab_teardown; fi' EXIT

# --- namespaces and links --------------------------------------------------------------------
sysctls() { local ns=$1; shift; ip netns exec "$ns" sysctl -qw "$@"; }

director_namespaces=()
for d in $(seq 1 "$DIRECTORS"); do director_namespaces+=("$(director_ns "$d" "$DIRECTORS")"); done
for ns in "$CLIENT_NS" "$ROUTER_NS" "${director_namespaces[@]}"; do ip netns add "$ns"; done
for i in $(seq 1 "$COUNT"); do ip netns add "$(backend_ns "$i")"; done
for ns in $(lab_namespaces); do
  in_ns "$ns" ip link set lo up
  # Namespaces do not reliably inherit the host's sysctls: set every one the lab depends on.
  sysctls "$ns" net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.default.rp_filter=2 \
    net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0
done
sysctls "$ROUTER_NS" net.ipv4.ip_forward=1
for ns in "${director_namespaces[@]}"; do sysctls "$ns" net.ipv4.ip_forward=1; done
if [ "$SCALE_OUT" = 1 ]; then
  # ECMP over the directors hashes the 5-tuple (src, dst, proto, sport, dport = 0x37). Policy 1
  # (L4) looks right but, on veth, hashes the sender socket's random txhash, which TCP re-rolls on
  # every retransmission timeout: flows would wander between directors (docs/scale-out.md).
  sysctls "$ROUTER_NS" net.ipv4.fib_multipath_hash_policy=3 net.ipv4.fib_multipath_hash_fields=0x37
fi

# veth pairs are created directly inside the namespaces: nothing touches the host's namespace.
ip link add eth0 netns "$CLIENT_NS" type veth peer name r-client netns "$ROUTER_NS"
in_ns "$ROUTER_NS" ip link add br-be type bridge
in_ns "$CLIENT_NS" ip addr add "$CLIENT_IP/24" dev eth0
in_ns "$CLIENT_NS" ip link set eth0 up
in_ns "$CLIENT_NS" ip route add default via "$ROUTER_CLIENT_IP"
in_ns "$ROUTER_NS" ip addr add "$ROUTER_CLIENT_IP/24" dev r-client
in_ns "$ROUTER_NS" ip addr add "$ROUTER_LAN_IP/24" dev br-be
for dev in r-client br-be; do in_ns "$ROUTER_NS" ip link set "$dev" up; done
# Each director on its own link; the route to the VIP through them is added by lab/director.sh
# announce once their tables are loaded. Replies from the VIP come back from the backends' side
# (hence the router's loose rp_filter).
for d in $(seq 1 "$DIRECTORS"); do
  ns=$(director_ns "$d" "$DIRECTORS")
  rdev=$(router_director_dev "$d" "$DIRECTORS")
  prefix=$(director_prefix "$DIRECTORS")
  ip link add d-up netns "$ns" type veth peer name "$rdev" netns "$ROUTER_NS"
  in_ns "$ROUTER_NS" ip addr add "$(router_director_ip "$d")/$prefix" dev "$rdev"
  in_ns "$ROUTER_NS" ip link set "$rdev" up
  in_ns "$ns" ip addr add "$(director_ip "$d")/$prefix" dev d-up
  in_ns "$ns" ip link set d-up up
  in_ns "$ns" ip route add default via "$(router_director_ip "$d")"
  if [ "$SCALE_OUT" = 1 ]; then
    # A director without its tables drops VIP traffic instead of routing it back to the router.
    in_ns "$ns" ip route add blackhole "$VIP/32"
  fi
  if [ "$MODE" = l2 ]; then
    ip link add d-lan netns "$ns" type veth peer name "r-dlan$([ "$DIRECTORS" -eq 1 ] || echo "$d")" netns "$ROUTER_NS"
    in_ns "$ROUTER_NS" ip link set "r-dlan$([ "$DIRECTORS" -eq 1 ] || echo "$d")" master br-be up
    in_ns "$ns" ip addr add "$(director_lan_ip "$d")/24" dev d-lan
    in_ns "$ns" ip link set d-lan up
  fi
  for dev in d-up d-lan; do
    in_ns "$ns" test -e "/proc/sys/net/ipv4/conf/$dev" && sysctls "$ns" "net.ipv4.conf.$dev.send_redirects=0"
  done
done
for i in $(seq 1 "$COUNT"); do
  ns=$(backend_ns "$i")
  ip link add eth0 netns "$ns" type veth peer name "r-be$i" netns "$ROUTER_NS"
  in_ns "$ROUTER_NS" ip link set "r-be$i" master br-be up
  in_ns "$ns" ip addr add "$(backend_ip "$i")/24" dev eth0
  in_ns "$ns" ip link set eth0 up
  in_ns "$ns" ip route add default via "$ROUTER_LAN_IP"
done

# Router counters: requests towards the director(s), replies from the VIP arriving from the backends.
{
  echo "table ip l4lb_lab_router {}"
  echo "delete table ip l4lb_lab_router"
  echo "table ip l4lb_lab_router {"
  echo "	counter to_director {}"
  echo "	counter replies_from_backends {}"
  if [ "$SCALE_OUT" = 1 ]; then for d in $(seq 1 "$DIRECTORS"); do echo "	counter to_director$d {}"; done; fi
  echo "	chain forward {"
  echo "		type filter hook forward priority filter; policy accept;"
  if [ "$DIRECTORS" -eq 1 ]; then
    echo "		ip daddr $VIP oifname \"r-director\" counter name to_director"
  else
    for d in $(seq 1 "$DIRECTORS"); do echo "		ip daddr $VIP oifname \"r-d$d\" counter name to_director$d counter name to_director"; done
  fi
  echo "		ip saddr $VIP iifname \"br-be\" counter name replies_from_backends"
  echo "	}"
  echo "}"
} | in_ns "$ROUTER_NS" nft -f -

if [ "$SCALE_OUT" = 1 ]; then
  # Which flows (source ports) each director carries, and its packets to the VIP: read and reset by
  # verify.sh and failover.sh. Priority raw - 1: before the l4lb_dsr chain rewrites the destination.
  for ns in "${director_namespaces[@]}"; do
    in_ns "$ns" nft -f - <<NFT
table ip l4lb_lab_director {
	counter to_vip {}
	set seen {
		type inet_service
		size 65535
		flags dynamic
	}
	chain prerouting {
		type filter hook prerouting priority raw - 1; policy accept;
		ip daddr $VIP tcp dport $PORT counter name to_vip update @seen { tcp sport }
	}
}
NFT
  done
fi

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
if [ "$MODE" = l2 ]; then
  "${L4LB[@]}" dsr routes -c "$CONFIG" --device d-lan >"$LAB_STATE/director-routes.batch"
fi
# Every director loads the same ruleset: the same Maglev tables, so any of them sends a flow to the
# same backend, and a flow that moves between directors keeps its backend.
for ns in "${director_namespaces[@]}"; do
  in_ns "$ns" nft -f "$LAB_STATE/director.nft"
  if [ "$MODE" = l2 ]; then in_ns "$ns" ip -batch "$LAB_STATE/director-routes.batch"; fi
done
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

# --- routing: BIRD, then each director announces the VIP (its tables are loaded by now) -----------
if [ "$ROUTING" = bgp ]; then
  mkdir -p "$BIRD_DIR"
  write_bird_router_conf "$DIRECTORS" "$BFD" >"$BIRD_DIR/router.conf"
  for d in $(seq 1 "$DIRECTORS"); do write_bird_director_conf "$d" "$DIRECTORS" "$BFD" >"$BIRD_DIR/director$d.conf"; done
  for conf in "$BIRD_DIR"/*.conf; do bird -p -c "$conf" || die "BIRD refused $conf"; done
  start_bird "$ROUTER_NS" router
  for d in $(seq 1 "$DIRECTORS"); do start_bird "$(director_ns "$d" "$DIRECTORS")" "director$d"; done
fi
cat >"$LAB_STATE/routing.env" <<ENV
DIRECTORS=$DIRECTORS
ROUTING=$ROUTING
BFD=$BFD
ENV
for d in $(seq 1 "$DIRECTORS"); do L4LB_LAB_LOCK_HELD=1 "$LAB_DIR/director.sh" announce "$d" >/dev/null; done
wait_route_nexthops "$DIRECTORS" 30 || die "the router did not get a route to $VIP through all $DIRECTORS directors within 30 s: $(in_ns "$ROUTER_NS" ip route show "$VIP/32")"

names=""; namespaces=""
for i in $(seq 1 "$COUNT"); do names+="${names:+,}be$i"; namespaces+="${namespaces:+,}$(backend_ns "$i")"; done
directors=""
for ns in "${director_namespaces[@]}"; do directors+="${directors:+,}$ns"; done
{
  echo "MODE=$MODE"
  echo "VIP=$VIP"
  echo "PORT=$PORT"
  echo "BULK_PORT=$BULK_PORT"
  echo "CLIENT_NS=$CLIENT_NS"
  echo "CLIENT_IP=$CLIENT_IP"
  echo "ROUTER_NS=$ROUTER_NS"
  echo "DIRECTOR_NS=$directors"
  echo "BACKEND_NS=$namespaces"
  echo "BACKENDS=$names"
  echo "SERVICE=web"
  echo "BULK_SERVICE=bulk"
  echo "CONFIG=$CONFIG"
  echo "STATE_DIR=$LAB_STATE"
  if [ "$SCALE_OUT" = 1 ]; then
    cat "$LAB_STATE/routing.env"
    [ "$ROUTING" != bgp ] || echo "BIRD_DIR=$BIRD_DIR"
  fi
} >"$LAB_ENV"
cat "$LAB_ENV"
