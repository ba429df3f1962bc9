/**
 * @module bench/revocation
 *
 * Per-SVID revocation (issue 10) on real processes over loopback: a server
 * (bench/server-proc), an agent (bench/agent-proc) and, in this process, one workload with
 * an open `FetchX509SVID` stream. Timed: `RevokeX509SVIDs` by the serial the workload holds
 * (what `mayfly-server x509 revoke -serial` calls) → the stream delivers a new SVID (new
 * serial) with the CRL listing the old one. Baseline in the same run, on the same stream:
 * an entry created on the server → the update on the stream (the agent's plain change
 * notice, with no re-issue). Printed as p50/p99, the ratio to that baseline, and the ratio
 * to the goal (p99 < 500 ms).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { adminSocketClients, unaryCall } from '../src/server/client.js';
import type { WireBundle } from '../src/server/messages.js';
import { parseCrl } from '../src/spiffe/x509/crl.js';
import { parseCertificate } from '../src/spiffe/x509/parse.js';
import { pemEncodeCertificates, splitDerCertificates } from '../src/spiffe/x509/pem.js';
import { workloadServiceDefinition } from '../src/wire/workload/proto.js';
import { startAgentProc } from './agent.js';
import { startServerProc, type ServerBenchLine } from './server.js';

interface Msg {
  svids: { spiffe_id: string; x509_svid: Buffer }[];
  crl: Buffer[];
}

const TD = 'bench.example';
const GOAL_P99_MS = 500;
const fmt = (n: number): string => n.toFixed(n < 10 ? 2 : 1);
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function benchRevocation(opts: { rounds?: number } = {}): Promise<ServerBenchLine[]> {
  const rounds = opts.rounds ?? 30;
  const dir = mkdtempSync(join(tmpdir(), 'mayfly-bench-revoke-'));
  const server = await startServerProc(join(dir, 'server'));
  const admin = adminSocketClients(server.ready.adminSocketPath);
  let agent: { agentId: string; stop(): Promise<void> } | undefined;
  let client: grpc.Client | undefined;
  let call: grpc.ClientReadableStream<Msg> | undefined;
  try {
    const bundle = await unaryCall<WireBundle>(admin.Bundle, 'GetBundle', {});
    writeFileSync(join(dir, 'bundle.pem'), pemEncodeCertificates(bundle.x509_authorities as Buffer[]));
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const socketPath = join(dir, 'wl', 'api.sock');
    agent = await startAgentProc({ serverAddress: `127.0.0.1:${server.ready.port}`, trustDomain: TD, dataDir: join(dir, 'agent'), socketPath, joinToken: token.value, trustBundlePath: join(dir, 'bundle.pem') });
    const uid = process.getuid?.() ?? 0;
    const target = `spiffe://${TD}/bench/revoked`;
    const createEntry = async (spiffeId: string): Promise<void> => {
      const res = await unaryCall<{ results: { status: { code: number; message: string } }[] }>(admin.Entry, 'BatchCreateEntry', {
        entries: [{ spiffe_id: spiffeId, parent_id: agent?.agentId, selectors: [{ type: 'unix', value: `uid:${uid}` }] }],
      });
      if (res.results[0]?.status.code !== 0) throw new Error(`entry create failed: ${res.results[0]?.status.message}`);
    };
    await createEntry(target);

    const Ctor = grpc.makeGenericClientConstructor(workloadServiceDefinition(), 'SpiffeWorkloadAPI');
    client = new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure());
    let last: Msg | undefined;
    const waiters = new Set<() => void>();
    const open = (): void => {
      const md = new grpc.Metadata();
      md.set('workload.spiffe.io', 'true');
      call = (client as unknown as { FetchX509SVID(r: object, m: grpc.Metadata): grpc.ClientReadableStream<Msg> }).FetchX509SVID({}, md);
      call.on('data', (m: Msg) => {
        last = m;
        for (const w of [...waiters]) w();
      });
      call.on('error', () => undefined);
    };
    const until = (cond: () => boolean, ms: number, what: string): Promise<void> =>
      cond()
        ? Promise.resolve()
        : new Promise((ok, fail) => {
            const check = (): void => {
              if (!cond()) return;
              waiters.delete(check);
              clearTimeout(timer);
              ok();
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`timed out after ${ms} ms waiting for ${what}`));
            }, ms);
            waiters.add(check);
          });
    // The agent answers PERMISSION_DENIED until it holds the entry's first SVID.
    for (let attempt = 0; last === undefined; attempt++) {
      if (attempt > 0) {
        call?.cancel();
        await sleep(50);
      }
      if (attempt > 600) throw new Error('the agent never served the bench entry');
      open();
      await Promise.race([until(() => last !== undefined, 500, 'first message').catch(() => undefined), sleep(500)]);
    }
    const serialOf = (m: Msg | undefined): string => {
      const s = m?.svids.find((x) => x.spiffe_id === target);
      return s === undefined ? '' : parseCertificate(splitDerCertificates(s.x509_svid)[0] as Buffer).serialHex;
    };
    const listed = new WeakMap<Msg, Set<string>>();
    const crlLists = (m: Msg | undefined, serial: string): boolean => {
      if (m === undefined) return false;
      let set = listed.get(m);
      if (set === undefined) listed.set(m, (set = new Set(m.crl.flatMap((c) => parseCrl(c).entries.map((e) => e.serialHex)))));
      return set.has(serial);
    };

    const revocation: number[] = [];
    const notice: number[] = [];
    for (let k = 0; k < rounds; k++) {
      // Baseline: an entry created → the update on the same stream.
      const id = `spiffe://${TD}/bench/notice-${k}`;
      const t0 = performance.now();
      await createEntry(id);
      await until(() => last?.svids.some((s) => s.spiffe_id === id) === true, 30_000, `notice ${k}`);
      notice.push(performance.now() - t0);
      await sleep(20);
      // Revocation → a new SVID for the revoked one, with the CRL listing it.
      const old = serialOf(last);
      const t1 = performance.now();
      await unaryCall(admin.SVID, 'RevokeX509SVIDs', { serial_number: old, reason: 'keyCompromise' });
      await until(() => serialOf(last) !== '' && serialOf(last) !== old && crlLists(last, old), 30_000, `re-issue ${k}`);
      revocation.push(performance.now() - t1);
      await sleep(20);
    }
    const r50 = pct(revocation, 50);
    const r99 = pct(revocation, 99);
    const n50 = pct(notice, 50);
    const n99 = pct(notice, 99);
    return [
      {
        name: `x509 revoke -serial → new SVID (with the CRL) on an open workload stream (${rounds} revocations)`,
        text:
          `p50 ${fmt(r50)} ms, p99 ${fmt(r99)} ms; ratio to the goal (p99 < ${GOAL_P99_MS} ms): ${(r99 / GOAL_P99_MS).toFixed(2)} at p99; ` +
          `baseline, same run and stream: entry created → update on the stream p50 ${fmt(n50)} ms, p99 ${fmt(n99)} ms → revocation/notice ${(r50 / n50).toFixed(2)}× at p50, ${(r99 / n99).toFixed(2)}× at p99`,
      },
    ];
  } finally {
    call?.cancel();
    client?.close();
    await agent?.stop();
    admin.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
