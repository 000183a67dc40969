#!/usr/bin/env bash
# Clients on one host that reach a backend both directly and through a local `mode: nat` VIP
# (docs/kernel.md, "Limits"): with the VIP's flows leaving from the clients' own address, a SYN of
# one kind meets the TIME_WAIT the other kind left at the backend under another client tuple. This
# kernel gives every connection a TCP timestamp offset of its own, so PAWS refuses about half of
# those SYNs (TcpExtPAWSTimewait) and each waits a second for its retransmission. With `snat:` an
# address of its own, the VIP's flows come from another address and never meet those sockets.
#
# In a network namespace of its own (loopback only): nginx answering `200 ok` on 127.0.0.1:22002,
# the table `l4lb kernel render` writes for a service with VIP 127.0.0.1:21002 and that backend,
# with `snat: 127.0.0.2`, then without; for each, wrk (Connection: close) alternately
# direct and through the VIP, printing new connections/s and the PAWS refusals of each round.
# The namespace, nginx and the temp dir are removed on exit, also on failure. Needs root, nft, nginx,
# nstat, wrk and a built dist/ (`npm run build`).
#   lab/paws-snat.sh [--rounds N] [--seconds S]
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

loop_experiment_args "ip nft nginx nstat wrk node" "$@"

NS="l4lb-paws-$$"
cleanup() {
  run_cleanup
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
run_tmp

loop_ns_up "$NS"
start_nginx_ok "$NS" "$RUN_TMP/nginx" 22002

paws() { ip netns exec "$NS" nstat -az TcpExtPAWSTimewait | awk '/PAWSTimewait/ { print $2 }'; }

# snat first: its flows leave no TIME_WAIT under the clients' own address, so the run without
# snat that follows starts clean (the other order carries 60 s of such sockets into the second).
for variant in 127.0.0.2 none; do
  {
    echo 'services:'
    echo '  - name: paws'
    echo '    mode: nat'
    echo '    vip: 127.0.0.1:21002'
    echo '    tableSize: 13'
    [ "$variant" = none ] || echo "    snat: $variant"
    echo '    backends:'
    echo '      - { name: web1, address: 127.0.0.1:22002 }'
  } >"$RUN_TMP/l4lb.yaml"
  "${L4LB[@]}" kernel render -c "$RUN_TMP/l4lb.yaml" >"$RUN_TMP/table.nft"
  ip netns exec "$NS" nft -f "$RUN_TMP/table.nft"
  for round in $(seq "$ROUNDS"); do
    for target in direct:22002 vip:21002; do
      before=$(paws)
      value=$(wrk_rate "$NS" "${target#*:}" "$SECONDS_PER_RUN" close)
      printf 'snat=%s round=%d path=%s conn_per_s=%s paws_refused=%d\n' "$variant" "$round" "${target%%:*}" "$value" $(($(paws) - before))
    done
  done
  ip netns exec "$NS" nft delete table inet l4lb_nat
done
