#!/usr/bin/env bash
# Director failover on a scale-out lab (lab/up.sh --directors N, N ≥ 2): long-lived flows keep
# talking (a line every 200 ms, echoed by the backend) while one director dies the way a dead host
# dies — every packet into and out of it dropped, links up — and comes back; then the same director
# is drained on purpose (lab/director.sh withdraw) and announced again.
#
#   lab/failover.sh [--fail N] [--flows N] [--down-for S]
#                   [--control other-seed|early-announce] [--backend-change [--sync-pins]]
#
# Measures: the time until the router's route loses the director, the longest stall of the flows it
# carried, the time until the route has it again; and checks: 0 broken flows, every echo from the
# backend the flow started on, the failed director's flows carried on by the survivors and back on it
# after recovery, the drain without a single TCP retransmission. Prints KEY=VALUE lines and
# ok/FAIL lines; exits 1 if a check fails. The lab is left as it was (also on failure).
#
# Controls (exit 0 only if the breakage they cause is seen, so the checks above can fail):
#   --control other-seed      the survivors are loaded with the same backends but another hash seed
#                             before the flows start: the failed director's flows break on them.
#   --control early-announce  the director withdraws, loses its tables and announces again before
#                             they are loaded (director.sh announce --force): its flows stall and new
#                             connections routed to it fail until the tables are back.
# Known limit:
#   --backend-change          the last backend is removed (l4lb dsr diff on every director) while
#                             the flows run, then the director dies: its flows whose slot moved break
#                             on the survivors, which hold no pin for them (pins are per director).
#                             The script predicts how many and checks that exactly those break.
#   --sync-pins               the mitigation: after the change, lab/pins.mjs copies every pin that
#                             disagrees with the new table to the other directors: 0 broken.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FAIL=1
FLOWS=40
DOWN_FOR=""
CONTROL=""
BACKEND_CHANGE=0
SYNC_PINS=0
INTERVAL_MS=200
FIRST_SPORT=42000
PROBE_SPORT=44000
usage="usage: failover.sh [--fail N] [--flows N] [--down-for S] [--control other-seed|early-announce] [--backend-change [--sync-pins]]"
while [ $# -gt 0 ]; do
  case "$1" in
    --fail) FAIL=${2:-}; shift 2 ;;
    --flows) FLOWS=${2:-}; shift 2 ;;
    --down-for) DOWN_FOR=${2:-}; shift 2 ;;
    --control) CONTROL=${2:-}; shift 2 ;;
    --backend-change) BACKEND_CHANGE=1; shift ;;
    --sync-pins) SYNC_PINS=1; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) die "unknown argument \"$1\" ($usage)" ;;
  esac
done
require_tools
load_env
[ "$DIRECTORS" -ge 2 ] || die "failover needs several directors: lab/up.sh --directors 2 (or more) --routing bgp"
[ "$ROUTING" = bgp ] || die "failover needs --routing bgp: a static route never loses a dead director (see docs/scale-out.md)"
[[ "$FAIL" =~ ^[0-9]+$ ]] && [ "$FAIL" -ge 1 ] && [ "$FAIL" -le "$DIRECTORS" ] || die "--fail must be 1..$DIRECTORS"
[[ "$FLOWS" =~ ^[0-9]+$ ]] && [ "$FLOWS" -ge 2 ] && [ "$FLOWS" -le 1000 ] || die "--flows must be 2..1000"
[ -z "$DOWN_FOR" ] || [[ "$DOWN_FOR" =~ ^[0-9]+$ ]] || die "--down-for must be whole seconds"
case "$CONTROL" in ""|other-seed|early-announce) ;; *) die "--control must be other-seed or early-announce" ;; esac
[ "$SYNC_PINS" = 0 ] || [ "$BACKEND_CHANGE" = 1 ] || die "--sync-pins goes with --backend-change"
[ -z "$CONTROL" ] || [ "$BACKEND_CHANGE" = 0 ] || die "--control and --backend-change are separate runs"
FAILED_NS=${DIRECTOR_NAMESPACES[$((FAIL - 1))]}
FAILED_DEV=$(router_director_dev "$FAIL" "$DIRECTORS")

run_tmp
CLIENT_PID=""
WATCH_PID=""
dead=0
tables_changed=0
finish() {
  local status=$?
  exec 3>&- 2>/dev/null || true
  run_cleanup
  # Leave the lab as up.sh made it: the director alive, the lab's tables everywhere, all announced.
  [ "$dead" = 0 ] || revive
  if [ "$tables_changed" = 1 ]; then
    local ns
    for ns in "${DIRECTOR_NAMESPACES[@]}"; do in_ns "$ns" nft -f "$LAB_STATE/director.nft" || log "could not restore the ruleset of $ns"; done
  fi
  local d
  for d in $(seq 1 "$DIRECTORS"); do
    [ "$(L4LB_LAB_LOCK_HELD=1 "$LAB_DIR/director.sh" status "$d" | head -1)" = ANNOUNCED=yes ] || L4LB_LAB_LOCK_HELD=1 "$LAB_DIR/director.sh" announce "$d" >/dev/null || log "could not announce director $d again"
  done
  exit "$status"
}
trap finish EXIT
# Interrupted or stopped, it still leaves the lab as it found it.
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s%3N; }
mark() { echo "$1 $(now)" >>"$RUN_TMP/phases"; }
director_hook() { L4LB_LAB_LOCK_HELD=1 "$LAB_DIR/director.sh" "$@" >/dev/null; }

# A dead host: nothing gets in (netdev ingress, before any other hook) and nothing gets out (IP
# output, ARP output); the links stay up, so the router notices only through BFD or the hold timer.
kill_director() {
  local dev devices=(d-up)
  in_ns "$FAILED_NS" test -e /sys/class/net/d-lan && devices+=(d-lan)
  {
    echo "table netdev l4lb_lab_dead {"
    for dev in "${devices[@]}"; do
      echo "	chain in_$dev {"
      echo "		type filter hook ingress device \"$dev\" priority -500; policy drop;"
      echo "	}"
    done
    echo "}"
    echo "table inet l4lb_lab_dead {"
    echo "	chain out {"
    echo "		type filter hook output priority -500; policy drop;"
    echo "	}"
    echo "}"
    echo "table arp l4lb_lab_dead {"
    echo "	chain out {"
    echo "		type filter hook output priority -500; policy drop;"
    echo "	}"
    echo "}"
  } | in_ns "$FAILED_NS" nft -f -
  dead=1
}
revive() {
  local family
  for family in netdev inet arp; do in_ns "$FAILED_NS" nft delete table "$family" l4lb_lab_dead 2>/dev/null || true; done
  dead=0
}

# Which director carries each flow, from the packets they saw: "SPORT DIRECTOR" lines.
reset_seen() { local ns; for ns in "${DIRECTOR_NAMESPACES[@]}"; do in_ns "$ns" nft flush set ip l4lb_lab_director seen; done; }
read_seen() { # read_seen FILE
  local d
  for d in $(seq 1 "$DIRECTORS"); do
    in_ns "${DIRECTOR_NAMESPACES[$((d - 1))]}" nft -j list set ip l4lb_lab_director seen |
      node -e 'let t="";process.stdin.on("data",c=>t+=c).on("end",()=>{const s=JSON.parse(t).nftables.find(e=>e.set).set;for(const e of s.elem??[])console.log(`${typeof e==="object"?e.elem?.val??e:e} ${process.argv[1]}`)})' "$d"
  done | sort -n >"$1"
}
owners() { reset_seen; sleep 1; read_seen "$RUN_TMP/owners-$1"; }

# The router's choice for each flow, from `ip route get` with its 5-tuple (policy 3 hashes exactly those).
predict_owners() {
  local sport dev
  for sport in $(seq "$FIRST_SPORT" $((FIRST_SPORT + FLOWS - 1))); do
    dev=$(in_ns "$ROUTER_NS" ip route get "$VIP" from "$CLIENT_IP" iif r-client ipproto tcp sport "$sport" dport "$PORT" | grep -o 'dev [^ ]*' | awk '{print $2}')
    echo "$sport ${dev#r-d}"
  done | sed 's/ irector$/ 1/' >"$RUN_TMP/predicted"
}

route_has() { # route_has yes|no SINCE_MS: the watcher saw the failed director's device present/absent after SINCE_MS
  awk -v since="$2" -v dev="$FAILED_DEV" -v want="$1" '$1 >= since { n = split($2, d, ","); has = "no"; for (i = 1; i <= n; i++) if (d[i] == dev) has = "yes"; if (has == want) found = 1 } END { exit !found }' "$RUN_TMP/route"
}
wait_route() { # wait_route yes|no SINCE_MS SECONDS
  local i
  for i in $(seq 1 $(($3 * 10))); do route_has "$1" "$2" && return 0; sleep 0.1; done
  die "the router's route did not $([ "$1" = yes ] && echo regain || echo lose) $FAILED_DEV within $3 s"
}
# Waits until every flow that is not broken has echoed after SINCE_MS (at most $2 seconds).
wait_flowing() {
  local since=$1 seconds=$2 i
  for i in $(seq 1 $((seconds * 10))); do
    awk -v since="$since" '$3 == "OPEN" { open[$2] = 1 } $3 == "BROKEN" { delete open[$2] } $3 == "ECHO" && $1 > since { fresh[$2] = 1 }
      END { for (s in open) if (!(s in fresh)) exit 1 }' "$RUN_TMP/stream" && return 0
    sleep 0.1
  done
  log "some flows have not echoed within $seconds s"
}
retransmits() { in_ns "$CLIENT_NS" awk '$1 == "Tcp:" && !h { for (i = 1; i <= NF; i++) col[$i] = i; h = 1; next } $1 == "Tcp:" { print $col["RetransSegs"] }' /proc/net/snmp; }

# --- set-up ------------------------------------------------------------------------------------
if [ "$CONTROL" = other-seed ]; then
  # Same backends, another seed: a different Maglev table and slot hash on every survivor.
  sed -E 's/^( +hashSeed: )([0-9]+)$/echo "\1$((\2 + 1))"/e' "$CONFIG" >"$RUN_TMP/other-seed.yaml"
  "${L4LB[@]}" dsr render -c "$RUN_TMP/other-seed.yaml" --method "$MODE" >"$RUN_TMP/other-seed.nft"
  tables_changed=1
  for d in $(seq 1 "$DIRECTORS"); do
    [ "$d" = "$FAIL" ] || in_ns "${DIRECTOR_NAMESPACES[$((d - 1))]}" nft -f "$RUN_TMP/other-seed.nft"
  done
fi
# Started with ip netns exec itself (not a shell function), so that $! is the process, and without
# the lab lock's fd 9.
ip netns exec "$ROUTER_NS" node "$LAB_DIR/route-watch.mjs" "$VIP" >"$RUN_TMP/route" 9<&- &
RUN_PIDS+=($!)
mkfifo "$RUN_TMP/control"
ip netns exec "$CLIENT_NS" node "$LAB_DIR/client.mjs" stream "$VIP" "$PORT" "$FIRST_SPORT" "$FLOWS" "$INTERVAL_MS" <"$RUN_TMP/control" >"$RUN_TMP/stream" 9<&- &
RUN_PIDS+=($!)
exec 3>"$RUN_TMP/control"
for _ in $(seq 1 300); do grep -q ' READY$' "$RUN_TMP/stream" && break; sleep 0.1; done
grep -q ' READY$' "$RUN_TMP/stream" || die "the client did not open its flows within 30 s"
for _ in $(seq 1 100); do [ -s "$RUN_TMP/route" ] && break; sleep 0.1; done
[ -s "$RUN_TMP/route" ] || die "the route watcher printed nothing within 10 s"
predict_owners
if [ "$CONTROL" = early-announce ]; then
  # Where the router will send each new connection of the control, while every director is in the route.
  for sport in $(seq "$PROBE_SPORT" $((PROBE_SPORT + FLOWS - 1))); do
    echo "$sport $(in_ns "$ROUTER_NS" ip route get "$VIP" from "$CLIENT_IP" iif r-client ipproto tcp sport "$sport" dport "$PORT" | grep -o 'dev [^ ]*' | awk '{print $2}')"
  done >"$RUN_TMP/probe-devs"
fi
mark start
owners before

# --- the scenario ------------------------------------------------------------------------------
if [ "$CONTROL" = early-announce ]; then
  # A restart done wrong: withdraw, lose the tables, announce again before loading them.
  mark drain; director_hook withdraw "$FAIL" --wait
  wait_flowing "$(now)" 20
  tables_changed=1
  in_ns "$FAILED_NS" nft delete table ip l4lb_dsr
  mark announce; director_hook announce "$FAIL" --force --wait
  L4LB_LAB_TIMEOUT_MS=2000 in_ns "$CLIENT_NS" node "$LAB_DIR/client.mjs" probe "$VIP" "$PORT" "$PROBE_SPORT" "$FLOWS" "$FLOWS" >"$RUN_TMP/probes"
  mark loaded; in_ns "$FAILED_NS" nft -f "$LAB_STATE/director.nft"
  wait_flowing "$(now)" 20
else
  if [ "$BACKEND_CHANGE" = 1 ]; then
    # A backend change the usual way: the last backend leaves; its flows drain on their pins.
    REMOVED=${BACKEND_NAMES[${#BACKEND_NAMES[@]}-1]}
    grep -v -E "^ +- \{ name: $REMOVED, " "$CONFIG" >"$RUN_TMP/changed.yaml"
    "${L4LB[@]}" dsr diff -c "$CONFIG" -c "$RUN_TMP/changed.yaml" --method "$MODE" >"$RUN_TMP/change.nft"
    tables_changed=1
    mark change
    for ns in "${DIRECTOR_NAMESPACES[@]}"; do in_ns "$ns" nft -f "$RUN_TMP/change.nft"; done
    if [ "$SYNC_PINS" = 1 ]; then
      node "$LAB_DIR/pins.mjs" sync -c "$RUN_TMP/changed.yaml" "${DIRECTOR_NAMESPACES[@]}" >"$RUN_TMP/sync"
      cat "$RUN_TMP/sync"
    fi
    awk -v ip="$CLIENT_IP" '$3 == "OPEN" { print ip ":" $2 }' "$RUN_TMP/stream" | "${L4LB[@]}" dsr lookup -c "$RUN_TMP/changed.yaml" --service "$SERVICE" |
      awk '{ split($1, a, ":"); print a[2], $4 }' | sort -n >"$RUN_TMP/new-table"
  fi
  mark kill; kill_director
  wait_route no "$(awk '$1 == "kill" { print $2 }' "$RUN_TMP/phases")" 20
  wait_flowing "$(now)" 20
  owners during
  [ -z "$DOWN_FOR" ] || sleep "$DOWN_FOR"
  mark revive; revive
  wait_route yes "$(awk '$1 == "revive" { print $2 }' "$RUN_TMP/phases")" 30
  wait_flowing "$(now)" 20
  owners after
  if [ -z "$CONTROL" ] && [ "$BACKEND_CHANGE" = 0 ]; then
    # A planned drain: withdraw the route, flows move with no loss; then announce again.
    retrans_before=$(retransmits)
    mark drain; director_hook withdraw "$FAIL"
    wait_route no "$(awk '$1 == "drain" { print $2 }' "$RUN_TMP/phases")" 10
    wait_flowing "$(now)" 10
    owners drained
    mark undrain; director_hook announce "$FAIL"
    wait_route yes "$(awk '$1 == "undrain" { print $2 }' "$RUN_TMP/phases")" 10
    wait_flowing "$(now)" 10
    owners undrained
    echo "drain_retransmits $(($(retransmits) - retrans_before))" >>"$RUN_TMP/phases"
  fi
fi
sleep 0.5
mark end
exec 3>&-
for _ in $(seq 1 100); do grep -q ' DONE$' "$RUN_TMP/stream" && break; sleep 0.1; done

# --- the figures and the checks --------------------------------------------------------------------
node "$LAB_DIR/failover-report.mjs" "$RUN_TMP" --fail "$FAIL" --directors "$DIRECTORS" --dev "$FAILED_DEV" --interval "$INTERVAL_MS" \
  --bfd "$BFD" --scenario "${CONTROL:-$([ "$BACKEND_CHANGE" = 1 ] && echo "backend-change$([ "$SYNC_PINS" = 1 ] && echo -synced)" || echo failover)}"
