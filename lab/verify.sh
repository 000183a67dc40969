#!/usr/bin/env bash
# Proves, on a lab made by lab/up.sh, that it does direct server return:
#   1. many flows from the client to the VIP all succeed, each answered by the backend the l4lb
#      hashing core predicts (`l4lb dsr lookup`: Maglev table + kernel-compatible jhash);
#   2. the spread over backends follows the Maglev table (slots per backend vs flows per backend);
#   3. replies come from the VIP and bypass the director: the router counts replies arriving from the
#      backends, the director counts zero packets from the VIP;
#   4. a bulk download (iperf3 -R) reaches the client while the director's interfaces see only a
#      tiny fraction of the bytes (both numbers printed);
#   5. with several directors (lab/up.sh --directors N): the flows and packets each director carried,
#      every director carrying some, and every director holding the same slot tables (the same as
#      `l4lb dsr render` of the lab's config) — what lets a flow survive a move between directors.
# Prints KEY=VALUE result lines; exits 1 if any check fails. Changes nothing in the lab.
#   lab/verify.sh [--flows N] [--seconds S]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FLOWS=300
SECONDS_BULK=2
FIRST_SPORT=21000
while [ $# -gt 0 ]; do
  case "$1" in
    --flows) FLOWS=${2:-}; shift 2 ;;
    --seconds) SECONDS_BULK=${2:-}; shift 2 ;;
    *) die "unknown argument \"$1\" (usage: verify.sh [--flows N] [--seconds S])" ;;
  esac
done
[[ "$FLOWS" =~ ^[0-9]+$ ]] && [ "$FLOWS" -ge 1 ] && [ "$FLOWS" -le 5000 ] || die "--flows must be 1..5000"
[[ "$SECONDS_BULK" =~ ^[0-9]+$ ]] && [ "$SECONDS_BULK" -ge 1 ] || die "--seconds must be a whole number ≥ 1"
require_tools
load_env
run_tmp
trap run_cleanup EXIT

percent() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", 100 * a / b }'; }

failures=0
check() { # check DESCRIPTION CONDITION...
  local what=$1; shift
  if "$@"; then echo "ok    $what"; else echo "FAIL  $what"; failures=$((failures + 1)); fi
}

if [ "$DIRECTORS" -gt 1 ]; then
  for ns in "${DIRECTOR_NAMESPACES[@]}"; do
    in_ns "$ns" nft flush set ip l4lb_lab_director seen
    in_ns "$ns" nft reset counter ip l4lb_lab_director to_vip >/dev/null
  done
fi

# --- 1. many flows, each on its predicted backend ------------------------------------------------
in_ns "$CLIENT_NS" node "$LAB_DIR/client.mjs" probe "$VIP" "$PORT" "$FIRST_SPORT" "$FLOWS" 16 >"$RUN_TMP/observed"
awk -v ip="$CLIENT_IP" '{print ip ":" $1}' "$RUN_TMP/observed" | "${L4LB[@]}" dsr lookup -c "$CONFIG" --service "$SERVICE" >"$RUN_TMP/predicted"
ok=$(awk '$2 != "ERROR"' "$RUN_TMP/observed" | wc -l)
agree=$(paste -d' ' "$RUN_TMP/observed" "$RUN_TMP/predicted" | awk '$2 == $6' | wc -l)
echo "FLOWS=$FLOWS"
echo "FLOWS_OK=$ok"
echo "FLOWS_ON_PREDICTED_BACKEND=$agree"
check "$ok of $FLOWS flows to $VIP:$PORT answered" test "$ok" -eq "$FLOWS"
check "$agree of $FLOWS flows on the backend the hashing core predicts" test "$agree" -eq "$FLOWS"
grep ERROR "$RUN_TMP/observed" | head -5 >&2 || true

# --- 2. spread over backends vs the Maglev table -------------------------------------------------
"${L4LB[@]}" dsr render -c "$CONFIG" --service "$SERVICE" --method "$MODE" >"$RUN_TMP/director.nft"
printf '%-8s %6s %8s %6s %8s\n' backend slots share flows share
spread=()
for name in "${BACKEND_NAMES[@]}"; do
  slots=$(awk -v b="$name" '$1 == "#" && $2 == b { print $(NF-1) }' "$RUN_TMP/director.nft")
  size=$(awk '/^# service / { for (i = 1; i < NF; i++) if ($i == "mod") print $(i+1) }' "$RUN_TMP/director.nft")
  flows=$(awk -v b="$name" '$2 == b' "$RUN_TMP/observed" | wc -l)
  printf '%-8s %6d %7.1f%% %6d %7.1f%%\n' "$name" "$slots" "$(percent "$slots" "$size")" "$flows" "$(percent "$flows" "$FLOWS")"
  spread+=("SPREAD_$name=$flows/$FLOWS slots=$slots/$size")
  [ "$slots" -gt 0 ] && [ "$flows" -gt 0 ] || { echo "FAIL  backend $name: $slots slots, $flows flows"; failures=$((failures + 1)); }
done
printf '%s\n' "${spread[@]}"

# --- 3. replies bypass the director --------------------------------------------------------------
from_vip=0
for ns in "${DIRECTOR_NAMESPACES[@]}"; do from_vip=$((from_vip + $(counter_packets l4lb_dsr from_vip "$ns"))); done
replies=$(counter_packets l4lb_lab_router replies_from_backends "$ROUTER_NS")
requests=$(counter_packets l4lb_lab_router to_director "$ROUTER_NS")
echo "DIRECTOR_PACKETS_FROM_VIP=$from_vip"
echo "ROUTER_REPLIES_FROM_BACKENDS=$replies"
echo "ROUTER_REQUESTS_TO_DIRECTOR=$requests"
check "director saw $from_vip packets from the VIP (replies never pass it)" test "$from_vip" -eq 0
check "router forwarded $replies reply packets from the VIP arriving from the backends' side" test "$replies" -gt 0

# --- 4. bulk download: client bytes vs director bytes --------------------------------------------
bulk_backend=$("${L4LB[@]}" dsr lookup -c "$CONFIG" --service "$BULK_SERVICE" "$CLIENT_IP" | cut -f4)
directors_bytes() { local ns total=0; for ns in "${DIRECTOR_NAMESPACES[@]}"; do total=$((total + $(ns_bytes "$ns"))); done; echo "$total"; }
director_before=$(directors_bytes)
in_ns "$CLIENT_NS" iperf3 --client "$VIP" --port "$BULK_PORT" --reverse --time "$SECONDS_BULK" --json >"$RUN_TMP/iperf3.json"
director_after=$(directors_bytes)
client_bytes=$(node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); if(r.error){console.error(r.error);process.exit(1)} console.log(r.end.sum_received.bytes)' "$RUN_TMP/iperf3.json")
director_bytes=$((director_after - director_before))
echo "BULK_BACKEND=$bulk_backend"
echo "BULK_CLIENT_BYTES=$client_bytes"
echo "BULK_DIRECTOR_BYTES=$director_bytes"
echo "bulk download from $bulk_backend through $VIP:$BULK_PORT: the client received $client_bytes bytes; the director's interfaces saw $director_bytes bytes (rx+tx, $(awk -v a="$director_bytes" -v b="$client_bytes" 'BEGIN { printf "%.3f", 100 * a / b }')%)"
check "director bytes are under 5% of the bytes the client received" test $((director_bytes * 20)) -lt "$client_bytes"

# --- 5. several directors: each carries flows, all hold the same tables ----------------------------
if [ "$DIRECTORS" -gt 1 ]; then
  printf '%-16s %6s %8s %8s\n' director flows share packets
  per_director=""
  for d in $(seq 1 "$DIRECTORS"); do
    ns=${DIRECTOR_NAMESPACES[$((d - 1))]}
    flows=$(in_ns "$ns" nft -j list set ip l4lb_lab_director seen | node -e 'let t="";process.stdin.on("data",c=>t+=c).on("end",()=>{const s=JSON.parse(t).nftables.find(e=>e.set).set;const lo=+process.argv[1],hi=+process.argv[2];console.log((s.elem??[]).filter(p=>p>=lo&&p<hi).length)})' "$FIRST_SPORT" $((FIRST_SPORT + FLOWS)))
    packets=$(counter_packets l4lb_lab_director to_vip "$ns")
    printf '%-16s %6d %7.1f%% %8d\n' "$ns" "$flows" "$(percent "$flows" "$FLOWS")" "$packets"
    echo "DIRECTOR_$d=$ns flows=$flows packets=$packets"
    per_director+="${per_director:+/}$flows"
    check "director $d ($ns) carried $flows of $FLOWS flows" test "$flows" -gt 0
  done
  echo "DIRECTOR_FLOWS=$per_director"
  identical=yes
  for map in $(awk '$1 == "map" && $2 ~ /^slots_/ { print $2 }' "$LAB_STATE/director.nft"); do
    "${L4LB[@]}" dsr render -c "$CONFIG" --method "$MODE" | node "$LAB_DIR/slots.mjs" rendered "$map" >"$RUN_TMP/$map.rendered"
    for ns in "${DIRECTOR_NAMESPACES[@]}"; do
      in_ns "$ns" nft -j list map ip l4lb_dsr "$map" | node "$LAB_DIR/slots.mjs" kernel >"$RUN_TMP/$map.$ns"
      if ! cmp -s "$RUN_TMP/$map.rendered" "$RUN_TMP/$map.$ns"; then
        identical=no
        echo "$ns: $map differs from the render of $CONFIG in $(diff "$RUN_TMP/$map.rendered" "$RUN_TMP/$map.$ns" | grep -c '^>') slots" >&2
      fi
    done
  done
  echo "DIRECTOR_TABLES_IDENTICAL=$identical"
  check "all $DIRECTORS directors hold identical slot tables (the render of the lab's config)" test "$identical" = yes
fi

if [ "$failures" -ne 0 ]; then echo "VERIFY=FAIL"; exit 1; fi
echo "VERIFY=OK"
