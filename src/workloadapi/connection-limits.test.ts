import { describe, expect, it } from 'vitest';
import { ConnectionLimits, DEFAULT_WORKLOAD_API_LIMITS, resolveWorkloadApiLimits } from './connection-limits.js';

const cred = (uid: number, pid: number, startTime = 1000): { uid: number; gid: number; pid: number; startTime: number } => ({ uid, gid: uid, pid, startTime });

describe('ConnectionLimits', () => {
  it('admits up to the per-process cap, then up to the per-uid cap across processes', () => {
    const limits = new ConnectionLimits({ maxConnectionsPerUid: 5, maxConnectionsPerPid: 3 });
    const a = cred(1000, 10);
    const b = cred(1000, 11);
    expect([1, 2, 3].map(() => limits.admit(a))).toEqual([undefined, undefined, undefined]);
    expect(limits.admit(a)).toEqual({ cap: 'pid', limit: 3 });
    expect(limits.admit(b)).toBeUndefined();
    expect(limits.admit(b)).toBeUndefined();
    expect(limits.admit(b)).toEqual({ cap: 'uid', limit: 5 });
    // Another uid is not affected by the first one's count.
    expect(limits.admit(cred(0, 12))).toBeUndefined();
    expect(limits.stats()).toEqual({ open: 6, byUid: new Map([[1000, 5], [0, 1]]), processes: 3 });
  });

  it('a reused pid (another start time) is another process with its own count', () => {
    const limits = new ConnectionLimits({ maxConnectionsPerUid: 10, maxConnectionsPerPid: 1 });
    expect(limits.admit(cred(1000, 10, 1))).toBeUndefined();
    expect(limits.admit(cred(1000, 10, 1))).toEqual({ cap: 'pid', limit: 1 });
    expect(limits.admit(cred(1000, 10, 2))).toBeUndefined();
  });

  it('release() gives the count back and forgets callers with none left; a release never admitted is a bug', () => {
    const limits = new ConnectionLimits({ maxConnectionsPerUid: 2, maxConnectionsPerPid: 2 });
    const a = cred(1000, 10);
    limits.admit(a);
    limits.admit(a);
    expect(limits.admit(a)).toBeDefined();
    limits.release(a);
    expect(limits.admit(a)).toBeUndefined();
    limits.release(a);
    limits.release(a);
    expect(limits.stats()).toEqual({ open: 0, byUid: new Map(), processes: 0 });
    expect(() => limits.release(a)).toThrow(TypeError);
  });

  it('refuses caps that are not positive integers', () => {
    expect(() => new ConnectionLimits({ maxConnectionsPerUid: 0, maxConnectionsPerPid: 1 })).toThrow(TypeError);
    expect(() => new ConnectionLimits({ maxConnectionsPerUid: 1, maxConnectionsPerPid: 0.5 })).toThrow(TypeError);
  });
});

describe('resolveWorkloadApiLimits', () => {
  it('fills in the defaults: no single uid can reach the global cap', () => {
    const d = resolveWorkloadApiLimits();
    expect(d).toEqual(DEFAULT_WORKLOAD_API_LIMITS);
    expect(d).toEqual({
      maxConnections: 4096,
      maxConnectionsPerUid: 256,
      maxConnectionsPerPid: 64,
      connectionIdleTimeoutMs: 300_000,
      firstRequestTimeoutMs: 5_000,
      connectionCloseGraceMs: 5_000,
    });
    expect(resolveWorkloadApiLimits({ maxConnectionsPerUid: 1000 }).maxConnectionsPerUid).toBe(1000);
  });

  it('refuses a per-uid cap that lets one uid take every connection, and a per-pid cap above the per-uid cap', () => {
    expect(() => resolveWorkloadApiLimits({ maxConnections: 256 })).toThrow(/maxConnectionsPerUid \(256\) must be below maxConnections \(256\)/);
    expect(() => resolveWorkloadApiLimits({ maxConnectionsPerUid: 4096 })).toThrow(TypeError);
    expect(() => resolveWorkloadApiLimits({ maxConnectionsPerPid: 300 })).toThrow(/must not exceed maxConnectionsPerUid/);
  });

  it('refuses values that are not positive integers, and timeouts a timer cannot hold', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, '10' as unknown as number]) {
      expect(() => resolveWorkloadApiLimits({ connectionIdleTimeoutMs: bad })).toThrow(TypeError);
    }
    expect(() => resolveWorkloadApiLimits({ firstRequestTimeoutMs: 2 ** 31 })).toThrow(/at most/);
  });
});
