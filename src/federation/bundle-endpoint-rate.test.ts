import { describe, expect, it } from 'vitest';
import { RateLimiter } from './bundle-endpoint-rate.js';

describe('per-address rate limit', () => {
  it('gives each address its burst, then its rate, with the wait to retry', () => {
    let now = 0;
    const r = new RateLimiter({ perSecond: 0.5, burst: 2, now: () => now });
    expect([r.take('a'), r.take('a'), r.take('a')]).toEqual([0, 0, 2]);
    expect(r.take('b')).toBe(0); // another address has its own bucket
    now += 2000;
    expect([r.take('a'), r.take('a')]).toEqual([0, 2]);
  });

  it('remembers a bounded number of addresses, forgetting the least recently seen', () => {
    const r = new RateLimiter({ perSecond: 1, burst: 1, maxClients: 2, now: () => 0 });
    expect(r.take('a')).toBe(0);
    expect(r.take('b')).toBe(0);
    expect(r.take('a')).toBe(1); // a seen again: now the most recent
    expect(r.take('c')).toBe(0); // b forgotten
    expect(r.take('a')).toBe(1); // a kept its empty bucket
    expect(r.take('b')).toBe(0); // b starts afresh (c forgotten)
  });

  it('refuses a config that cannot limit', () => {
    expect(() => new RateLimiter({ perSecond: 0, burst: 1 })).toThrow(TypeError);
    expect(() => new RateLimiter({ perSecond: 1, burst: 0 })).toThrow(TypeError);
  });
});
