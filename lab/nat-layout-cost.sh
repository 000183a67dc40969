#!/usr/bin/env bash
# Where the kernel NAT path's cost goes against a direct connection that conntrack tracks
# (docs/kernel.md, "Limits"): the same four services as `npm run bench:proxy`'s kernel path (VIPs
# 127.0.0.1:21001–21004, one backend each, default tableSize), loaded as rulesets that differ in
# one place, each measured with wrk 2 threads × 64 connections, new connections (`Connection:
# close`) and keep-alive requests, against nginx answering `200 ok` on 127.0.0.1:22002:
#   direct-ct     no NAT: wrk straight to the backend, conntrack on (bench:proxy's `direct-ct` table)
#   rendered      the table `l4lb kernel render` writes (what `l4lb run` loads): one lookup per
#                 client packet in a verdict map keyed VIP . port . backend . port, whose element
#                 sends it to its backend's count chain (a named counter)
#   three-lookups the layout l4lb rendered before: a VIP dispatch map, then in the service's chain a
#                 dead-backend set and a counter map keyed by the backend (three lookups)
#   elem-counter  the rendered map with an anonymous counter on each element and no count chain
#                 (cheaper by a jump; its counts die with the element when a backend goes down)
#   no-filter     the rendered table without its filter chains (no resets, no per-backend counters)
#   plain-counter the filter chains reduced to their first matches and an anonymous counter:
#                 no lookup
# Each run gets a fresh namespace (a variant's TIME_WAIT sockets never meet the next one's SYNs),
# variants interleaved within each round; prints every run, then the medians. The namespaces, nginx
# and temp files are removed on exit, also on failure. Needs root, nft, nginx, wrk and a built
# dist/ (`npm run build`).
#   lab/nat-layout-cost.sh [--rounds N] [--seconds S]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

loop_experiment_args "ip nft nginx wrk node awk" "$@"

NS=""
cleanup() {
  run_cleanup
  [ -z "$NS" ] || ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
run_tmp

SERVICES=(bulk:21001:22001 http:21002:22002 idle:21003:22003 tls:21004:22004)
{
  echo 'services:'
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r kind vip backend <<<"$entry"
    printf '  - name: bench-nat-%s\n    mode: nat\n    vip: 127.0.0.1:%s\n    hashKey: source-ip-port\n' "$kind" "$vip"
    printf '    backends:\n      - { name: %s1, address: 127.0.0.1:%s }\n' "$kind" "$backend"
  done
} >"$RUN_TMP/l4lb.yaml"
"${L4LB[@]}" kernel render -c "$RUN_TMP/l4lb.yaml" >"$RUN_TMP/rendered.nft"
grep -q '^	map backends_ipv4 {' "$RUN_TMP/rendered.nft" || die "the rendered table has no backends_ipv4 map: this script knows another layout"

# The rendered table without the named top-level blocks (a block: a line `\t<kind> NAME {` up to
# its line `\t}`) whose names match the regular expression $1.
without_blocks() {
  awk -v drop="$1" '
    skipping { if ($0 == "\t}") skipping = 0; next }
    /^\t(chain|map|set) [A-Za-z0-9_]+ \{$/ { split($0, word, /[ \t]+/); if (word[3] ~ drop) { skipping = 1; next } }
    { print }
  ' "$RUN_TMP/rendered.nft"
}
# Prints the table's closing brace last: everything of $1 but its last line `}`, then stdin,
# then `}`.
close_with() { sed '$d' "$1"; cat; echo '}'; }
filter_chains() {
  local rule=$1
  printf '\tchain filter_forward {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\t%s\n\t}\n' "$rule"
  printf '\tchain filter_output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\t%s\n\t}\n' "$rule"
}
# A bench service's nft id, as the renderer names it (its name with - → _).
service_id() { echo "bench_nat_$1"; }

without_blocks '^(filter_forward|filter_output|backends_ipv4|reset_flow|count_.*)$' >"$RUN_TMP/no-filter.nft"
filter_chains 'meta l4proto tcp ct direction original ct status dnat counter' | close_with "$RUN_TMP/no-filter.nft" >"$RUN_TMP/plain-counter.nft"
{
  elements=()
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r _ vip backend <<<"$entry"
    elements+=("127.0.0.1 . $vip . 127.0.0.1 . $backend counter : accept")
  done
  printf '\tmap backends_ipv4 {\n\t\ttype ipv4_addr . inet_service . ipv4_addr . inet_service : verdict\n\t\tcounter\n'
  printf '\t\telements = { %s }\n\t}\n' "$(IFS=,; echo "${elements[*]}" | sed 's/,/, /g')"
  filter_chains "$(grep -m1 -o 'meta l4proto tcp ct direction original .* vmap @backends_ipv4' "$RUN_TMP/rendered.nft")"
} | close_with "$RUN_TMP/no-filter.nft" >"$RUN_TMP/elem-counter.nft"
{
  flows=()
  for entry in "${SERVICES[@]}"; do
    IFS=: read -r kind vip backend <<<"$entry"
    id=$(service_id "$kind")
    flows+=("127.0.0.1 . $vip : jump flow_$id")
    printf '\tset dead_%s {\n\t\ttype ipv4_addr . inet_service\n\t}\n' "$id"
    printf '\tchain flow_%s {\n' "$id"
    printf '\t\tmeta l4proto tcp ct reply ip saddr . ct reply proto-src @dead_%s reject with tcp reset\n' "$id"
    printf '\t\tcounter name ip daddr . tcp dport map { 127.0.0.1 . %s : "be_%s_%s1" }\n\t}\n' "$backend" "$id" "$kind"
  done
  printf '\tmap flows_ipv4 {\n\t\ttype ipv4_addr . inet_service : verdict\n'
  printf '\t\telements = { %s }\n\t}\n' "$(IFS=,; echo "${flows[*]}" | sed 's/,/, /g')"
  filter_chains 'meta l4proto tcp ct direction original ct status dnat ct original ip daddr . ct original proto-dst vmap @flows_ipv4'
} | close_with "$RUN_TMP/no-filter.nft" >"$RUN_TMP/three-lookups.nft"
# bench:proxy's direct-ct table (src/bench/proxy/configs.ts, conntrackRuleset).
cat >"$RUN_TMP/direct-ct.nft" <<'EOF'
table inet bench_conntrack {
  chain input {
    type filter hook input priority filter; policy accept;
    ct state established,related accept
  }
  chain output {
    type filter hook output priority filter; policy accept;
    ct state established,related accept
  }
}
EOF

VARIANTS=(direct-ct rendered three-lookups elem-counter no-filter plain-counter)
for variant in "${VARIANTS[@]}"; do
  check_ns="l4lb-layout-check-$$"
  NS=$check_ns
  loop_ns_up "$NS"
  ip netns exec "$NS" nft -c -f "$RUN_TMP/$variant.nft" || die "nft refuses the $variant ruleset ($RUN_TMP/$variant.nft)"
  ip netns del "$NS"
  NS=""
done

# The packets variant $1 counted for the service on 21002 in namespace $NS ('-': it counts none).
counted_packets() {
  local listing
  case "$1" in
    rendered | three-lookups) listing=$(ip netns exec "$NS" nft list counter inet l4lb_nat be_bench_nat_http_http1) ;;
    plain-counter) listing=$(ip netns exec "$NS" nft list chain inet l4lb_nat filter_output) ;;
    elem-counter) listing=$(ip netns exec "$NS" nft list map inet l4lb_nat backends_ipv4 | tr ',' '\n' | grep '21002') ;;
    *) echo -; return ;;
  esac
  grep -o 'packets [0-9]*' <<<"$listing" | awk '{ sum += $2 } END { print sum + 0 }'
}

: >"$RUN_TMP/results"
for round in $(seq "$ROUNDS"); do
  for variant in "${VARIANTS[@]}"; do
    NS="l4lb-layout-$$-$variant"
    loop_ns_up "$NS"
    ip netns exec "$NS" nft -f "$RUN_TMP/$variant.nft"
    start_nginx_ok "$NS" "$RUN_TMP/nginx-$variant-$round" 22002
    port=21002
    [ "$variant" != direct-ct ] || port=22002
    wrk_rate "$NS" "$port" 1 close >/dev/null # warm-up
    conn=$(wrk_rate "$NS" "$port" "$SECONDS_PER_RUN" close)
    keepalive=$(wrk_rate "$NS" "$port" "$SECONDS_PER_RUN")
    # A variant that counts must have counted the run's client packets: else its rule never matched
    # and it measured something else.
    counted=$(counted_packets "$variant")
    [ "$counted" = - ] || [ "$counted" -gt 0 ] || die "$variant counted no packet: its filter rule never matched"
    printf 'round=%d variant=%s conn_per_s=%s keepalive_per_s=%s counted_packets=%s\n' "$round" "$variant" "$conn" "$keepalive" "$counted" | tee -a "$RUN_TMP/results"
    stop_run_pids
    ip netns del "$NS"
    NS=""
  done
done

echo
echo "medians over $ROUNDS round(s) of ${SECONDS_PER_RUN} s, wrk 2 threads × 64 connections:"
printf '%-14s %12s %8s %14s %8s\n' variant 'new conn/s' 'vs ct' 'keep-alive/s' 'vs ct'
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { grep " variant=$1 " "$RUN_TMP/results" | sed -n "s/.* $2=\([0-9]*\).*/\1/p" | median; }
base_conn=$(field direct-ct conn_per_s)
base_ka=$(field direct-ct keepalive_per_s)
for variant in "${VARIANTS[@]}"; do
  conn=$(field "$variant" conn_per_s)
  ka=$(field "$variant" keepalive_per_s)
  printf '%-14s %12s %7.2f× %14s %7.2f×\n' "$variant" "$conn" "$(awk -v a="$conn" -v b="$base_conn" 'BEGIN { print a / b }')" \
    "$ka" "$(awk -v a="$ka" -v b="$base_ka" 'BEGIN { print a / b }')"
done
