/**
 * Per-service source rules: `allow` and `deny` CIDR lists matched on the effective client address
 * (the PROXY header's source when one was accepted, else the peer). Deny wins; an empty or absent
 * allow list allows everyone not denied (the order of HAProxy's `tcp-request connection reject`
 * before an accept list, and of nginx's `deny` listed before `allow all`).
 */
import { AddressKey, CidrSet } from './cidr.js';

/** Why a client was admitted or refused. An address that does not parse is refused. */
export type AccessVerdict = 'allowed' | 'denied' | 'not-allowed' | 'bad-address';

export interface AccessRules {
  readonly allow?: readonly string[];
  readonly deny?: readonly string[];
}

export class AccessPolicy {
  private readonly key = new AddressKey();

  private constructor(
    private readonly allow: CidrSet,
    private readonly deny: CidrSet,
  ) {}

  /**
   * Parses both lists; throws LbError LB_ERR_INVALID_ARGUMENT naming the list and entry, e.g.
   * `deny[0]: "10.0.0.0/33": prefix length must be 0–32`.
   */
  static from(rules: AccessRules): AccessPolicy {
    return new AccessPolicy(CidrSet.parse(rules.allow ?? [], 'allow'), CidrSet.parse(rules.deny ?? [], 'deny'));
  }

  /** True if this policy can refuse anyone (so a caller may skip it when false). */
  get restricts(): boolean {
    return !this.allow.isEmpty || !this.deny.isEmpty;
  }

  /** Parses the address once; O(log n) in the list sizes, no allocation. */
  evaluate(address: string): AccessVerdict {
    if (!this.key.set(address)) return 'bad-address';
    if (this.deny.hasKey(this.key)) return 'denied';
    if (!this.allow.isEmpty && !this.allow.hasKey(this.key)) return 'not-allowed';
    return 'allowed';
  }
}
