/**
 * The descriptor budget (src/proxy/descriptors.ts): the limit read from /proc/self/limits, the
 * pure budget arithmetic, and the shared counter services take shares from.
 */
import { describe, expect, it } from 'vitest';
import { connectionBudget, DescriptorBudget, descriptorLimit, DESCRIPTOR_RESERVE } from '../src/proxy/descriptors.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            256                  4096                 files
Max locked memory         8388608              8388608              bytes
`;

describe('descriptorLimit', () => {
  it('reads the soft limit of "Max open files"', () => {
    expect(descriptorLimit(() => LIMITS)).toBe(256);
  });

  it('is unbounded when the limit is "unlimited", missing, or the file cannot be read', () => {
    expect(descriptorLimit(() => LIMITS.replace('256   ', 'unlimited'))).toBe(Number.POSITIVE_INFINITY);
    expect(descriptorLimit(() => 'Max cpu time unlimited unlimited seconds\n')).toBe(Number.POSITIVE_INFINITY);
    expect(
      descriptorLimit(() => {
        throw new Error('ENOENT');
      }),
    ).toBe(Number.POSITIVE_INFINITY);
  });

  it("reads this process's own limit (Linux: always a number)", () => {
    expect(Number.isInteger(descriptorLimit())).toBe(true);
  });
});

describe('connectionBudget', () => {
  it('two descriptors per connection, after what is open and the reserve', () => {
    expect(connectionBudget(256, 22)).toBe(Math.floor((256 - 22 - DESCRIPTOR_RESERVE) / 2));
    expect(connectionBudget(1_048_576, 30, 64)).toBe(524_241);
  });

  it('at least one connection, and unbounded without a limit', () => {
    expect(connectionBudget(64, 40)).toBe(1);
    expect(connectionBudget(Number.POSITIVE_INFINITY, 1000)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('DescriptorBudget', () => {
  it('gives out capacity shares, refuses the next, and takes them back', () => {
    const budget = new DescriptorBudget(2);
    expect([budget.tryAcquire(), budget.tryAcquire(), budget.tryAcquire()]).toEqual([true, true, false]);
    expect(budget.inUse).toBe(2);
    budget.release();
    expect(budget.tryAcquire()).toBe(true);
    budget.release();
    budget.release();
    budget.release(); // one too many: never below zero
    expect(budget.inUse).toBe(0);
  });
});
