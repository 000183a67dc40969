/**
 * `l4lb check`'s host checks for kernel services (src/cli/check.ts hostProblems): each problem is
 * one line naming the fix; files without `mode: nat` and `--no-host` ask nothing of the host.
 */
import { describe, expect, it } from 'vitest';
import { hostProblems, type HostFacts } from '../src/cli/check.js';
import { parseConfig } from '../src/config/index.js';

const NAT = parseConfig('services:\n  - { name: web, mode: nat, vip: 127.0.0.1:8000, tableSize: 13, backends: [{ name: b1, address: 127.0.0.1:8001 }] }\n', 'nat.yaml');
const PROXY = parseConfig('services:\n  - { name: pg, listen: 127.0.0.1:6432, backends: [{ name: b1, address: 127.0.0.1:5432 }] }\n', 'proxy.yaml');
const GOOD: HostFacts = { nftVersion: '1.0.6', bridgeNfCallIptables: undefined, conntrackMax: 262_144, conntrackTimeWait: 120 };

describe('hostProblems', () => {
  it('a good host and a file without nat services have none', () => {
    expect(hostProblems(NAT, GOOD)).toEqual([]);
    expect(hostProblems(PROXY, { nftVersion: undefined, bridgeNfCallIptables: '1', conntrackMax: 10, conntrackTimeWait: 10 })).toEqual([]);
  });

  it('names a missing or old nft, bridge-nf-call-iptables on, and a small nf_conntrack_max, each with its fix', () => {
    expect(hostProblems(NAT, { ...GOOD, nftVersion: undefined }).map((p) => p.message)).toEqual(['mode: nat needs nft on PATH: install nftables (1.0 or later)']);
    expect(hostProblems(NAT, { ...GOOD, nftVersion: '0.9.8' }).map((p) => p.message)).toEqual(['mode: nat needs nft 1.0 or later, this host has 0.9.8: upgrade nftables']);
    expect(hostProblems(NAT, { ...GOOD, bridgeNfCallIptables: '1' })[0]?.message).toContain('sysctl -w net.bridge.bridge-nf-call-iptables=0');
    expect(hostProblems(NAT, { ...GOOD, bridgeNfCallIptables: '0' })).toEqual([]);
    expect(hostProblems(NAT, { ...GOOD, conntrackMax: 4096 })[0]).toMatchObject({ path: 'services[0] (host)', message: expect.stringContaining('nf_conntrack_max is 4096') as unknown });
  });

  it('names a conntrack TIME_WAIT timeout shorter than the backends\' TIME_WAIT, with its fix', () => {
    const [problem, ...rest] = hostProblems(NAT, { ...GOOD, conntrackTimeWait: 10 });
    expect(rest).toEqual([]);
    expect(problem?.message).toContain('nf_conntrack_tcp_timeout_time_wait is 10 s, shorter than the 60 s');
    expect(problem?.message).toContain('sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=120');
    expect(hostProblems(NAT, { ...GOOD, conntrackTimeWait: 60 })).toEqual([]);
    expect(hostProblems(NAT, { ...GOOD, conntrackTimeWait: undefined })).toEqual([]);
  });
});
