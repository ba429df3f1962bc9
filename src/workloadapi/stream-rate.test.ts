import { describe, expect, it } from 'vitest';
import { StreamRate } from './stream-rate.js';

describe('StreamRate', () => {
  it('gives each uid its burst, then refills at perSecond, never above the burst', () => {
    let now = 0;
    const r = new StreamRate({ burst: 3, perSecond: 2, nowMs: () => now });
    expect([1, 2, 3, 4].map(() => r.take(1000))).toEqual([true, true, true, false]);
    expect(r.take(1001)).toBe(true); // another uid has its own bucket
    now += 500; // one more stream
    expect([r.take(1000), r.take(1000)]).toEqual([true, false]);
    now += 60_000; // refilled to the burst, not beyond
    expect([1, 2, 3, 4].map(() => r.take(1000))).toEqual([true, true, true, false]);
  });

  it('refuses a burst or rate that is not a positive integer', () => {
    expect(() => new StreamRate({ burst: 0 })).toThrow(TypeError);
    expect(() => new StreamRate({ perSecond: 1.5 })).toThrow(TypeError);
  });
});
