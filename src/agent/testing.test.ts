import { describe, expect, it } from 'vitest';
import { ManualScheduler, type Settleable } from './testing.js';

/** Work that takes `turns` event-loop turns (more than one settle round), counted as busy meanwhile. */
function slowWork(): Settleable & { start(turns: number, then?: () => void): void; done: number } {
  let busy = 0;
  const waiters: (() => void)[] = [];
  const w = {
    done: 0,
    get idle(): boolean {
      return busy === 0;
    },
    settled: (): Promise<void> => (busy === 0 ? Promise.resolve() : new Promise<void>((r) => waiters.push(r))),
    start(turns: number, then?: () => void): void {
      busy++;
      const step = (left: number): void => {
        if (left > 0) {
          setImmediate(() => step(left - 1));
          return;
        }
        w.done++;
        then?.();
        if (--busy === 0) for (const r of waiters.splice(0)) r();
      };
      step(turns);
    },
  };
  return w;
}

describe('ManualScheduler.settle', () => {
  it('waits for the work a due timer started, also work that starts more work, without moving the clock', async () => {
    const sched = new ManualScheduler();
    const work = slowWork();
    sched.watch(work);
    const start = sched.now().getTime();
    sched.at(new Date(start + 1000), () => work.start(5, () => work.start(5)));
    await sched.advanceAndSettle(1000);
    expect(work.done).toBe(2);
    expect(sched.now().getTime()).toBe(start + 1000);
  });

  it('runs timers the work arms for the current instant, but not later ones', async () => {
    const sched = new ManualScheduler();
    const ran: string[] = [];
    void Promise.resolve().then(() => {
      sched.at(sched.now(), () => ran.push('now'));
      sched.at(new Date(sched.now().getTime() + 1), () => ran.push('later'));
    });
    await sched.settle();
    expect(ran).toEqual(['now']);
    expect(sched.pendingTimers).toBe(1);
  });

  it('gives up on work that keeps re-arming at the current instant', async () => {
    const sched = new ManualScheduler();
    const again = (): void => void sched.at(sched.now(), again);
    again();
    await expect(sched.settle()).rejects.toThrow(/still in flight after 100 rounds/);
  });
});
