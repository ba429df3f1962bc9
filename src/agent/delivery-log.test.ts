import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DELIVERY_COUNTER_FILE, DeliveryLog, recordedAudience, type DeliverySink } from './delivery-log.js';
import type { DeliveryReport } from './server-client.js';
import { ServerCallError, GrpcCode } from './server-client.js';
import { ManualScheduler } from './testing.js';

/** A sink that records every report and fails while `down` is set. */
class FakeSink implements DeliverySink {
  readonly reports: DeliveryReport[] = [];
  down = false;
  attempts = 0;
  async reportDeliveries(report: DeliveryReport): Promise<{ recorded: number; refused: number }> {
    this.attempts++;
    if (this.down) throw new ServerCallError(GrpcCode.UNAVAILABLE, 'server down');
    this.reports.push(report);
    return { recorded: report.deliveries.length, refused: 0 };
  }
  get serials(): string[] {
    return this.reports.flatMap((r) => r.deliveries.map((d) => d.serial ?? ''));
  }
}

const caller = { pid: 4242, uid: 1000, gid: 1000, selectors: ['unix:uid:1000'] };
const x509 = (serial: string) => ({ kind: 'x509' as const, spiffeId: 'spiffe://example.org/web', serial, notAfter: 1_900_000_000 });
const tick = async (sched: ManualScheduler, ms: number): Promise<void> => {
  sched.advance(ms);
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'mayfly-delivery-log-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('DeliveryLog', () => {
  it('sends buffered records in batches every interval, in order', async () => {
    const sched = new ManualScheduler();
    const sink = new FakeSink();
    const log = new DeliveryLog({ sink, scheduler: sched, flushIntervalMs: 1000, maxBatch: 3 });
    log.start();
    for (const s of ['01', '02']) log.record(caller, x509(s));
    expect(sink.attempts).toBe(0);
    await tick(sched, 1000);
    expect(sink.serials).toEqual(['01', '02']);
    expect(sink.reports[0]!.deliveries[0]).toMatchObject({ pid: 4242, uid: 1000, gid: 1000, selectors: ['unix:uid:1000'], spiffeId: 'spiffe://example.org/web' });
    // A full batch goes at once, without waiting for the interval.
    for (const s of ['03', '04', '05', '06']) log.record(caller, x509(s));
    await tick(sched, 0);
    expect(sink.serials).toEqual(['01', '02', '03', '04', '05']);
    await tick(sched, 1000);
    expect(sink.serials).toEqual(['01', '02', '03', '04', '05', '06']);
    expect(log.buffered).toBe(0);
    await log.stop();
  });

  it('records the same cached JWT-SVID handed to the same process once', async () => {
    const sched = new ManualScheduler();
    const sink = new FakeSink();
    const log = new DeliveryLog({ sink, scheduler: sched });
    log.start();
    const jwt = (aud: string, notAfter: number) => ({ kind: 'jwt' as const, spiffeId: 'spiffe://example.org/web', audience: [aud], notAfter });
    for (let i = 0; i < 5; i++) log.record(caller, jwt('db', 100));
    log.record(caller, jwt('db', 200)); // a new token
    log.record(caller, jwt('cache', 100)); // another audience
    log.record({ ...caller, pid: 4243 }, jwt('db', 100)); // another process
    expect(log.buffered).toBe(4);
    await log.stop();
  });

  it('keeps a bounded part of a huge audience set (32 audiences of 1 KiB: the largest a workload may ask for)', () => {
    const huge = Array.from({ length: 32 }, (_, i) => `https://svc-${i}.example/`.padEnd(1024, 'a'));
    const kept = recordedAudience(huge);
    expect(kept).toHaveLength(5);
    expect(kept.at(-1)).toBe('+28 more');
    expect(kept.slice(0, 4).every((a) => a.length === 257 && a.startsWith('https://svc-'))).toBe(true);
    expect(recordedAudience(['db'])).toEqual(['db']);
  });

  it('keeps records while the server is down, retries with backoff, and sends them in order later', async () => {
    const sched = new ManualScheduler();
    const sink = new FakeSink();
    sink.down = true;
    const log = new DeliveryLog({ sink, scheduler: sched, flushIntervalMs: 100, maxBatch: 2, retryMinMs: 1000, retryMaxMs: 8000, random: () => 0.999 });
    log.start();
    for (const s of ['a1', 'a2', 'a3']) log.record(caller, x509(s));
    await tick(sched, 0);
    expect(sink.attempts).toBe(1);
    // Backoff: no new attempt before the delay has passed, longer delays after each failure.
    await tick(sched, 500);
    expect(sink.attempts).toBe(1);
    await tick(sched, 500);
    expect(sink.attempts).toBe(2);
    await tick(sched, 1000);
    expect(sink.attempts).toBe(2);
    await tick(sched, 1000);
    expect(sink.attempts).toBe(3);
    expect(log.buffered).toBe(3);
    sink.down = false;
    await tick(sched, 8000);
    expect(sink.serials).toEqual(['a1', 'a2']);
    await tick(sched, 100);
    expect(sink.serials).toEqual(['a1', 'a2', 'a3']);
    await log.stop();
  });

  it('drops and counts records once the buffer is full, and reports the count with the next batch', async () => {
    const sched = new ManualScheduler();
    const sink = new FakeSink();
    sink.down = true;
    const log = new DeliveryLog({ sink, scheduler: sched, maxBuffered: 4, maxBatch: 10, flushIntervalMs: 1000, retryMinMs: 1000 });
    log.start();
    for (let i = 0; i < 10; i++) log.record(caller, x509(`b${i}`));
    expect(log.buffered).toBe(4);
    expect(log.droppedUnreported).toBe(6);
    sink.down = false;
    expect(await log.flush()).toBe(true);
    expect(sink.reports).toHaveLength(1);
    expect(sink.reports[0]).toMatchObject({ dropped: 6, lostAtRestart: 0 });
    expect(sink.serials).toEqual(['b0', 'b1', 'b2', 'b3']);
    expect(log.droppedUnreported).toBe(0);
    await log.stop();
  });

  it('a record during shutdown is counted, and the next process reports what the last one left unsent', async () => {
    const dataDir = tempDir();
    const sched = new ManualScheduler();
    const sink = new FakeSink();
    sink.down = true;
    const first = new DeliveryLog({ sink, scheduler: sched, dataDir, flushIntervalMs: 1000 });
    first.start();
    for (const s of ['c1', 'c2', 'c3']) first.record(caller, x509(s));
    await first.stop(50);
    first.record(caller, x509('c4'));
    const file = JSON.parse(readFileSync(join(dataDir, DELIVERY_COUNTER_FILE), 'utf8')) as Record<string, unknown>;
    expect(file).toEqual({ unsent: 3, dropped: 1, lostAtRestart: 0, unknownMore: false, clean: true });

    sink.down = false;
    const second = new DeliveryLog({ sink, scheduler: sched, dataDir, flushIntervalMs: 1000 });
    second.start();
    expect(await second.flush()).toBe(true);
    expect(sink.reports.at(-1)).toMatchObject({ deliveries: [], dropped: 1, lostAtRestart: 3, lostAtRestartUnknownMore: false });
    await second.stop();
  });

  it('after a crash (no clean stop) the next process reports the last count as a lower bound', async () => {
    const dataDir = tempDir();
    const sched = new ManualScheduler();
    const sink = new FakeSink();
    sink.down = true;
    const crashed = new DeliveryLog({ sink, scheduler: sched, dataDir, flushIntervalMs: 1000, retryMinMs: 1000 });
    crashed.start();
    for (const s of ['d1', 'd2']) crashed.record(caller, x509(s));
    await tick(sched, 1000); // a failed flush writes the count
    crashed.record(caller, x509('d3')); // after the last count: unknown to the next process
    // (the process dies here: no stop())

    sink.down = false;
    const next = new DeliveryLog({ sink, scheduler: new ManualScheduler(), dataDir });
    next.start();
    expect(await next.flush()).toBe(true);
    expect(sink.reports.at(-1)).toMatchObject({ deliveries: [], lostAtRestart: 2, lostAtRestartUnknownMore: true });
    await next.stop();
    const file = JSON.parse(readFileSync(join(dataDir, DELIVERY_COUNTER_FILE), 'utf8')) as Record<string, unknown>;
    expect(file).toEqual({ unsent: 0, dropped: 0, lostAtRestart: 0, unknownMore: false, clean: true });
  });
});
