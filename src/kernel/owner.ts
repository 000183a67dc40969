/**
 * The ownership marker of l4lb's kernel tables (`inet l4lb_nat`, `ip l4lb_dsr`): a set `l4lb_owner`
 * whose presence says "made by l4lb" and whose one element is a fingerprint of the table's shape
 * (chains, rules, maps and counters, not the slot elements). A restarted l4lb reads it to tell a
 * table it may adopt by rewriting elements from one it must load whole, and a table it did not make
 * (no marker) from both. Pure.
 */

/** The set whose presence marks a table as l4lb's and whose element is the shape fingerprint. */
export const OWNER_SET = 'l4lb_owner';

/** 32-bit FNV-1a of the text: the shape fingerprint kept in `l4lb_owner`. */
export function shapeFingerprint(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}
