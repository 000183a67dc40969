#!/usr/bin/env bash
# The announce/withdraw hook of one director of the lab (lab/up.sh): a director announces the VIP
# only once its tables are loaded, and withdraws it before they are removed or replaced, so the router
# never sends a flow to a director that would drop it or pick another backend.
#
#   lab/director.sh announce N [--force] [--wait]   start announcing the VIP from director N
#   lab/director.sh withdraw N [--wait]             stop announcing it (a planned drain)
#   lab/director.sh status N                        ANNOUNCED=yes|no and IN_ROUTE=yes|no
#
# announce first checks that director N holds the l4lb_dsr ruleset of the lab's config — every slot
# map equal to `l4lb dsr render` of $LAB_STATE/l4lb.yaml — and refuses otherwise; --force skips the
# check (failover.sh's controls use it to show what goes wrong without it).
# With --routing bgp the hook tells the director's BIRD, through its control socket, to enable or
# disable the static protocol `vip` whose route BGP exports: the router gets an UPDATE or a withdraw
# and the BGP and BFD sessions stay up. With --routing static it rewrites the router's static
# (multipath) route over the announced directors, as an operator would.
# --wait (lab only: it looks into the router) returns once the router's route shows the change.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: director.sh announce|withdraw|status N [--force] [--wait]"
ACTION=${1:-}
INDEX=${2:-}
shift 2 || die "$usage"
FORCE=0
WAIT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1; shift ;;
    --wait) WAIT=1; shift ;;
    *) die "unknown argument \"$1\" ($usage)" ;;
  esac
done
case "$ACTION" in announce|withdraw|status) ;; *) die "$usage" ;; esac
[ "$(id -u)" -eq 0 ] || die "the lab needs root; run it with sudo"
[ -f "$LAB_STATE/routing.env" ] || die "no lab is up ($LAB_STATE/routing.env missing): run lab/up.sh first"
# shellcheck disable=SC1091
. "$LAB_STATE/routing.env"
[[ "$INDEX" =~ ^[0-9]+$ ]] && [ "$INDEX" -ge 1 ] && [ "$INDEX" -le "$DIRECTORS" ] || die "director must be 1..$DIRECTORS, got \"$INDEX\""
NS=$(director_ns "$INDEX" "$DIRECTORS")
DEV=$(router_director_dev "$INDEX" "$DIRECTORS")
MARKS="$LAB_STATE/announced"

# True if director N holds every slot map of the lab's rendered ruleset, element for element.
tables_loaded() {
  local map
  for map in $(awk '$1 == "map" && $2 ~ /^slots_/ { print $2 }' "$LAB_STATE/director.nft"); do
    cmp -s <(in_ns "$NS" nft -j list map ip l4lb_dsr "$map" 2>/dev/null | node "$LAB_DIR/slots.mjs" kernel 2>/dev/null) \
      <(node "$LAB_DIR/slots.mjs" rendered "$map" <"$LAB_STATE/director.nft") || return 1
  done
}

# The router's static route over the directors marked announced (none: no route).
static_route() {
  local nexthops=() d
  for d in $(seq 1 "$DIRECTORS"); do
    [ -e "$MARKS/$d" ] && nexthops+=(nexthop via "$(director_ip "$d")" dev "$(router_director_dev "$d" "$DIRECTORS")")
  done
  if [ ${#nexthops[@]} -eq 0 ]; then
    in_ns "$ROUTER_NS" ip route del "$VIP/32" 2>/dev/null || true
  else
    in_ns "$ROUTER_NS" ip route replace "$VIP/32" "${nexthops[@]}"
  fi
}

bird_vip() { # bird_vip enable|disable
  local out
  out=$(birdc -s "$(bird_socket "director$INDEX")" "$1" vip 2>&1) || die "birdc $1 vip on director $INDEX: $out"
  grep -qE "vip: (enabled|disabled|already)" <<<"$out" || die "birdc $1 vip on director $INDEX: $out"
}

in_route() { route_devs | grep -qx "$DEV"; }
wait_in_route() { # wait_in_route yes|no
  local i
  for i in $(seq 1 100); do
    if in_route; then [ "$1" = yes ] && return 0; else [ "$1" = no ] && return 0; fi
    sleep 0.1
  done
  die "the router's route to $VIP did not $([ "$1" = yes ] && echo gain || echo lose) director $INDEX ($DEV) within 10 s"
}

case "$ACTION" in
  announce)
    [ "$FORCE" = 1 ] || tables_loaded || die "director $INDEX ($NS) does not hold the lab's tables: refusing to announce $VIP (load them first, or --force)"
    mkdir -p "$MARKS"
    touch "$MARKS/$INDEX"
    if [ "$ROUTING" = bgp ]; then bird_vip enable; else static_route; fi
    [ "$WAIT" = 0 ] || wait_in_route yes
    echo "ANNOUNCED=yes"
    ;;
  withdraw)
    rm -f "$MARKS/$INDEX"
    if [ "$ROUTING" = bgp ]; then bird_vip disable; else static_route; fi
    [ "$WAIT" = 0 ] || wait_in_route no
    echo "ANNOUNCED=no"
    ;;
  status)
    echo "ANNOUNCED=$([ -e "$MARKS/$INDEX" ] && echo yes || echo no)"
    echo "IN_ROUTE=$(in_route && echo yes || echo no)"
    ;;
esac
