#!/usr/bin/env bash
# Removes everything lab/up.sh made: the backend services (by recorded PID), every l4lb-* lab
# namespace with its links and nft tables, and the state directory. Idempotent.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ "$(id -u)" -eq 0 ] || die "the lab needs root; run it with sudo"
lab_teardown
left=$(lab_namespaces)
[ -z "$left" ] || die "namespaces left behind: $left"
log "lab removed"
