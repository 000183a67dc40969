#!/usr/bin/env bash
# Backend churn on a lab made by lab/up.sh, with long-lived flows open:
#   1. open N long-lived flows to the web service and note each one's backend;
#   2. remove one backend from the config and apply `l4lb dsr diff` (one nft transaction);
#   3. the slots that changed in the kernel's map are exactly the ones the hashing core predicted,
#      and the map now equals the full render of the new config;
#   4. every long-lived flow is still up and on its backend (flows are pinned; a removed backend's
#      own flows keep draining to it while it runs);
#   5. new flows follow the new table: each on the backend `l4lb dsr lookup` predicts, none on the
#      removed backend.
# Then the original table is restored with the reverse diff (and, whatever happens, on exit), so the
# lab is left as it was. Prints KEY=VALUE result lines; exits 1 if a check fails.
#   lab/churn.sh [--remove NAME] [--flows N] [--new N]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REMOVE=""
HELD=60
NEW=200
while [ $# -gt 0 ]; do
  case "$1" in
    --remove) REMOVE=${2:-}; shift 2 ;;
    --flows) HELD=${2:-}; shift 2 ;;
    --new) NEW=${2:-}; shift 2 ;;
    *) die "unknown argument \"$1\" (usage: churn.sh [--remove NAME] [--flows N] [--new N])" ;;
  esac
done
[[ "$HELD" =~ ^[0-9]+$ ]] && [ "$HELD" -ge 1 ] && [ "$HELD" -le 1000 ] || die "--flows must be 1..1000"
[[ "$NEW" =~ ^[0-9]+$ ]] && [ "$NEW" -ge 1 ] && [ "$NEW" -le 5000 ] || die "--new must be 1..5000"
require_tools
load_env
[ -n "$REMOVE" ] || REMOVE=${BACKEND_NAMES[${#BACKEND_NAMES[@]}-1]}
printf '%s\n' "${BACKEND_NAMES[@]}" | grep -qx "$REMOVE" || die "--remove: no backend \"$REMOVE\" (backends: $BACKENDS)"
HELD_SPORT=22000
NEW_SPORT=24000

run_tmp
# Runs "$@" in every director (one, or all of a scale-out lab: they must hold the same tables).
on_directors() { local ns; for ns in "${DIRECTOR_NAMESPACES[@]}"; do in_ns "$ns" "$@" || return 1; done; }
restore() {
  # Back to the full ruleset of the lab's config: the state up.sh left, whatever happened here.
  "${L4LB[@]}" dsr render -c "$CONFIG" --method "$MODE" >"$RUN_TMP/original.nft" && on_directors nft -f "$RUN_TMP/original.nft" || log "could not restore the director ruleset"
}
finish() { exec 3>&- 2>/dev/null || true; restore; run_cleanup; }
trap finish EXIT
restore

failures=0
check() { local what=$1; shift; if "$@"; then echo "ok    $what"; else echo "FAIL  $what"; failures=$((failures + 1)); fi; }
# The first director's map; with several, the others must equal it (else "differ" is printed).
kernel_slots() {
  local ns first=""
  for ns in "${DIRECTOR_NAMESPACES[@]}"; do
    in_ns "$ns" nft -j list map ip l4lb_dsr "slots_$SERVICE" | node "$LAB_DIR/slots.mjs" kernel >"$RUN_TMP/slots.$ns"
    if [ -z "$first" ]; then first=$ns; elif ! cmp -s "$RUN_TMP/slots.$first" "$RUN_TMP/slots.$ns"; then echo "differ $ns"; fi
  done
  cat "$RUN_TMP/slots.$first"
}
wait_for_line() { # wait_for_line FILE TEXT: until FILE has a line TEXT (30 s at most)
  local i
  for i in $(seq 1 300); do grep -qx "$2" "$1" && return 0; sleep 0.1; done
  die "timed out waiting for \"$2\" in $1"
}

# --- 1. long-lived flows -------------------------------------------------------------------------
mkfifo "$RUN_TMP/control"
in_ns "$CLIENT_NS" node "$LAB_DIR/client.mjs" hold "$VIP" "$PORT" "$HELD_SPORT" "$HELD" <"$RUN_TMP/control" >"$RUN_TMP/held" &
RUN_PIDS+=($!)
exec 3>"$RUN_TMP/control"
wait_for_line "$RUN_TMP/held" READY
grep -v -e READY -e ERROR "$RUN_TMP/held" >"$RUN_TMP/held-before" || true
opened=$(wc -l <"$RUN_TMP/held-before")
check "$opened of $HELD long-lived flows open" test "$opened" -eq "$HELD"

# --- 2. remove a backend, apply the diff ---------------------------------------------------------
NEW_CONFIG="$RUN_TMP/without-$REMOVE.yaml"
grep -v -E "^ +- \{ name: $REMOVE, " "$CONFIG" >"$NEW_CONFIG"
"${L4LB[@]}" dsr diff -c "$CONFIG" -c "$NEW_CONFIG" --service "$SERVICE" --method "$MODE" >"$RUN_TMP/diff.nft"
"${L4LB[@]}" dsr diff -c "$NEW_CONFIG" -c "$CONFIG" --service "$SERVICE" --method "$MODE" >"$RUN_TMP/undo.nft"
predicted=$(awk -v s="$SERVICE" '$1 == "#" && $2 == "service" && $3 == s ":" { print $4 }' "$RUN_TMP/diff.nft")
size=$(awk -v s="$SERVICE" '$1 == "#" && $2 == "service" && $3 == s ":" { print $6 }' "$RUN_TMP/diff.nft")
kernel_slots >"$RUN_TMP/slots-before"
on_directors nft -f "$RUN_TMP/diff.nft"
kernel_slots >"$RUN_TMP/slots-after"
"${L4LB[@]}" dsr render -c "$NEW_CONFIG" --service "$SERVICE" --method "$MODE" | node "$LAB_DIR/slots.mjs" rendered "slots_$SERVICE" >"$RUN_TMP/slots-expected"

# --- 3. moved slots: kernel vs hashing core --------------------------------------------------------
moved=$(paste -d' ' "$RUN_TMP/slots-before" "$RUN_TMP/slots-after" | awk '$2 != $4' | wc -l)
echo "CHURN_REMOVED=$REMOVE"
echo "CHURN_TABLE_SIZE=$size"
echo "CHURN_SLOTS_PREDICTED=$predicted"
echo "CHURN_SLOTS_MOVED_IN_KERNEL=$moved"
check "$moved slots changed in the kernel's map; the hashing core predicted $predicted" test "$moved" -eq "$predicted"
check "the kernel's map equals the full render of the new config" cmp -s "$RUN_TMP/slots-after" "$RUN_TMP/slots-expected"

# --- 4. long-lived flows stay on their backend ---------------------------------------------------
echo check >&3
wait_for_line "$RUN_TMP/held" CHECKED
sed -n '/^READY$/,/^CHECKED$/p' "$RUN_TMP/held" | grep -v -x -e READY -e CHECKED >"$RUN_TMP/held-after"
kept=$(join "$RUN_TMP/held-before" "$RUN_TMP/held-after" | awk '$2 == $3' | wc -l)
on_removed=$(awk -v b="$REMOVE" '$2 == b' "$RUN_TMP/held-before" | wc -l)
awk -v ip="$CLIENT_IP" '{print ip ":" $1}' "$RUN_TMP/held-before" | "${L4LB[@]}" dsr lookup -c "$NEW_CONFIG" --service "$SERVICE" >"$RUN_TMP/held-new-table"
on_moved=$(paste -d' ' "$RUN_TMP/held-before" "$RUN_TMP/held-new-table" | awk '$2 != $6' | wc -l)
echo "CHURN_HELD_FLOWS=$opened"
echo "CHURN_HELD_KEPT=$kept"
echo "CHURN_HELD_ON_MOVED_SLOTS=$on_moved"
echo "CHURN_HELD_ON_REMOVED_BACKEND=$on_removed"
check "$kept of $opened long-lived flows still up on their backend ($on_moved of them in slots that moved, $on_removed on $REMOVE, draining)" test "$kept" -eq "$opened"

# --- 5. new flows follow the new table -----------------------------------------------------------
in_ns "$CLIENT_NS" node "$LAB_DIR/client.mjs" probe "$VIP" "$PORT" "$NEW_SPORT" "$NEW" 16 >"$RUN_TMP/new"
awk -v ip="$CLIENT_IP" '{print ip ":" $1}' "$RUN_TMP/new" | "${L4LB[@]}" dsr lookup -c "$NEW_CONFIG" --service "$SERVICE" >"$RUN_TMP/new-predicted"
new_ok=$(awk '$2 != "ERROR"' "$RUN_TMP/new" | wc -l)
new_agree=$(paste -d' ' "$RUN_TMP/new" "$RUN_TMP/new-predicted" | awk '$2 == $6' | wc -l)
new_on_removed=$(awk -v b="$REMOVE" '$2 == b' "$RUN_TMP/new" | wc -l)
echo "CHURN_NEW_FLOWS=$NEW"
echo "CHURN_NEW_OK=$new_ok"
echo "CHURN_NEW_ON_PREDICTED_BACKEND=$new_agree"
echo "CHURN_NEW_ON_REMOVED_BACKEND=$new_on_removed"
check "$new_agree of $NEW new flows on the backend of the new table ($new_ok answered)" test "$new_agree" -eq "$NEW"
check "$new_on_removed new flows reached $REMOVE" test "$new_on_removed" -eq 0

# --- back to the original table ------------------------------------------------------------------
on_directors nft -f "$RUN_TMP/undo.nft"
kernel_slots >"$RUN_TMP/slots-restored"
check "the reverse diff restores the original map" cmp -s "$RUN_TMP/slots-restored" "$RUN_TMP/slots-before"

if [ "$failures" -ne 0 ]; then echo "CHURN=FAIL"; exit 1; fi
echo "CHURN=OK"
