/**
 * `tcp`: the backend passes when a TCP connection to it is established (HAProxy's plain `check`
 * without an `option *-chk`, a layer-4 check). Nothing is sent; the socket is closed at once.
 */
import { runProbe } from './probe.js';
import type { HealthChecker } from './types.js';

export function createTcpChecker(): HealthChecker {
  return {
    type: 'tcp',
    check: (target, timeoutMs, signal) => runProbe(target, timeoutMs, signal, undefined),
  };
}
