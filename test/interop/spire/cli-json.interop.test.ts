/**
 * `-output json` judged against SPIRE v1.13.3 itself: a real `spire-server` (sqlite,
 * disk key manager) and a real `mayfly-server` run side by side, the same commands go to
 * both (SPIRE's CLI to SPIRE, Mayfly's to Mayfly), and each pair of documents must have
 * the same structure: the same keys at every level and the same JSON type for every value
 * (so int64s are strings in both, IDs are `{trust_domain, path}` in both). Values that do
 * not depend on the server (IDs, selectors, hints, status codes) must be equal too. Then
 * SPIRE's `entry show -output json` is fed to Mayfly's `entry create -data -`: what a SPIRE
 * operator exports, Mayfly imports.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spireBinary } from './bin.js';
import { shape } from './json-shape.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MAYFLY = join(ROOT, 'bin', 'mayfly-server.js');
const TD = 'example.org';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(file: string, args: string[], input?: string): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(input ?? '');
  });
}

const logs: string[] = [];
let dir: string;
let spireSock: string;
let mayflySock: string;
let spire: ChildProcess;
let mayfly: ChildProcess;

const spireCli = (args: string[], input?: string): Promise<Result> => exec(spireBinary('spire-server'), [...args, '-socketPath', spireSock], input);
const mayflyCli = (args: string[], input?: string): Promise<Result> => exec(process.execPath, [MAYFLY, ...args, '-socketPath', mayflySock], input);

/** Runs `args` on both servers; both must succeed (unless `allowFail`) and print one JSON document each. */
async function both(args: string[], opts: { allowFail?: boolean } = {}): Promise<{ spire: unknown; mayfly: unknown }> {
  const [s, m] = await Promise.all([spireCli([...args, '-output', 'json']), mayflyCli([...args, '-output', 'json'])]);
  if (!opts.allowFail) {
    expect(s.code, `spire-server ${args.join(' ')}: ${s.stderr}`).toBe(0);
    expect(m.code, `mayfly-server ${args.join(' ')}: ${m.stderr}`).toBe(0);
  }
  for (const r of [s, m]) expect(r.stdout.split('\n')).toHaveLength(2); // one compact line and its newline
  return { spire: JSON.parse(s.stdout), mayfly: JSON.parse(m.stdout) };
}

async function waitFor(what: string, ok: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up: ${logs.join('\n')}`);
}

beforeAll(async () => {
  spireBinary('spire-server');
  dir = mkdtempSync(join(tmpdir(), 'mayfly-spire-cli-'));
  spireSock = join(dir, 'spire', 'api.sock');
  mayflySock = join(dir, 'mayfly', 'private', 'api.sock');
  writeFileSync(
    join(dir, 'spire.conf'),
    `server {
  bind_address = "127.0.0.1"
  bind_port = "0"
  socket_path = "${spireSock}"
  trust_domain = "${TD}"
  data_dir = "${join(dir, 'spire', 'data')}"
  log_level = "WARN"
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = "${join(dir, 'spire', 'data', 'datastore.sqlite3')}" } }
  KeyManager "disk" { plugin_data { keys_path = "${join(dir, 'spire', 'data', 'keys.json')}" } }
  NodeAttestor "join_token" { plugin_data {} }
}
`,
  );
  writeFileSync(
    join(dir, 'mayfly.conf'),
    `server {
  bind_address = "127.0.0.1"
  bind_port = "0"
  socket_path = "${mayflySock}"
  trust_domain = "${TD}"
  data_dir = "${join(dir, 'mayfly', 'data')}"
  log_level = "WARN"
}
plugins {
  KeyManager "disk" { plugin_data { keys_path = "${join(dir, 'mayfly', 'data', 'keys.json')}" } }
  NodeAttestor "join_token" { plugin_data {} }
}
telemetry { Prometheus { host = "127.0.0.1" port = 0 } }
`,
  );
  spire = spawn(spireBinary('spire-server'), ['run', '-config', join(dir, 'spire.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  mayfly = spawn(process.execPath, [MAYFLY, 'run', '-config', join(dir, 'mayfly.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  for (const c of [spire, mayfly]) createInterface({ input: c.stderr as NodeJS.ReadableStream }).on('line', (l) => logs.push(l));
  await waitFor('spire-server', async () => (await spireCli(['healthcheck'])).code === 0);
  await waitFor('mayfly-server', async () => (await mayflyCli(['healthcheck'])).code === 0);
}, 120_000);

afterAll(async () => {
  for (const c of [spire, mayfly]) {
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await gone;
    }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('-output json has the structure spire-server v1.13.3 prints', () => {
  const ids: { spire: string; mayfly: string } = { spire: '', mayfly: '' };

  it('entry create, show (all and by ID), update, count and delete', async () => {
    const create = ['entry', 'create', '-spiffeID', `spiffe://${TD}/web`, '-parentID', `spiffe://${TD}/host`, '-selector', 'unix:uid:1000', '-selector', 'unix:gid:5',
      '-x509SVIDTTL', '300', '-dns', 'web.example.org', '-hint', 'front&back', '-entryExpiry', '4102444800'];
    const created = await both(create);
    expect(shape(created.mayfly)).toEqual(shape(created.spire));
    const se = (created.spire as { results: { entry: Record<string, unknown> }[] }).results[0]?.entry as Record<string, unknown>;
    const me = (created.mayfly as { results: { entry: Record<string, unknown> }[] }).results[0]?.entry as Record<string, unknown>;
    for (const k of ['spiffe_id', 'parent_id', 'x509_svid_ttl', 'jwt_svid_ttl', 'dns_names', 'hint', 'expires_at', 'revision_number', 'store_svid', 'admin', 'downstream', 'federates_with']) {
      expect(me[k], k).toEqual(se[k]);
    }
    const sorted = (l: unknown): string[] => (l as unknown[]).map((x) => JSON.stringify(x)).sort();
    expect(sorted(me.selectors)).toEqual(sorted(se.selectors));
    ids.spire = se.id as string;
    ids.mayfly = me.id as string;

    const refused = await both(['entry', 'create', '-spiffeID', 'spiffe://other.org/web', '-parentID', `spiffe://${TD}/host`, '-selector', 'unix:uid:1'], { allowFail: true });
    expect(shape(refused.mayfly)).toEqual(shape(refused.spire));
    expect((refused.mayfly as { results: { status: { code: number } }[] }).results[0]?.status.code).toBe(3);

    const shown = await both(['entry', 'show']);
    expect(shape(shown.mayfly)).toEqual(shape(shown.spire));
    const [s1, m1] = await Promise.all([spireCli(['entry', 'show', '-entryID', ids.spire, '-output', 'json']), mayflyCli(['entry', 'show', '-entryID', ids.mayfly, '-output', 'json'])]);
    expect(shape(JSON.parse(m1.stdout))).toEqual(shape(JSON.parse(s1.stdout)));

    const update = (id: string): string[] => ['entry', 'update', '-entryID', id, '-spiffeID', `spiffe://${TD}/web`, '-parentID', `spiffe://${TD}/host`, '-selector', 'unix:uid:1001', '-output', 'json'];
    const [s2, m2] = await Promise.all([spireCli(update(ids.spire)), mayflyCli(update(ids.mayfly))]);
    const updated = { spire: JSON.parse(s2.stdout), mayfly: JSON.parse(m2.stdout) };
    expect(shape(updated.mayfly)).toEqual(shape(updated.spire));
    expect(updated.mayfly.results[0].entry.revision_number).toBe(updated.spire.results[0].entry.revision_number);

    const counted = await both(['entry', 'count']);
    expect(counted.mayfly).toEqual(counted.spire);
  });

  it('bundle show, list (empty, one, by ID)', async () => {
    const own = await both(['bundle', 'show']);
    expect(shape(own.mayfly)).toEqual(shape(own.spire));
    const none = await both(['bundle', 'list']);
    expect(none.mayfly).toEqual(none.spire);

    const [sp, mp] = await Promise.all([spireCli(['bundle', 'show']), mayflyCli(['bundle', 'show'])]);
    const [ss, ms] = await Promise.all([spireCli(['bundle', 'set', '-id', 'spiffe://fed.org'], sp.stdout), mayflyCli(['bundle', 'set', '-id', 'spiffe://fed.org'], mp.stdout)]);
    expect([ss.code, ms.code]).toEqual([0, 0]);
    const listed = await both(['bundle', 'list']);
    expect(shape(listed.mayfly)).toEqual(shape(listed.spire));
    const one = await both(['bundle', 'list', '-id', 'spiffe://fed.org']);
    expect(shape(one.mayfly)).toEqual(shape(one.spire));
  });

  it('agent list (none attested)', async () => {
    const listed = await both(['agent', 'list']);
    expect(listed.mayfly).toEqual(listed.spire);
  });

  it("imports SPIRE's entry show output with entry create -data -, and deletes as SPIRE prints it", async () => {
    const exported = (await spireCli(['entry', 'show', '-output', 'json'])).stdout;
    const deleted = await both(['entry', 'delete', '-entryID', 'no-such-entry'], { allowFail: true });
    expect(shape(deleted.mayfly)).toEqual(shape(deleted.spire));
    for (const d of [deleted.spire, deleted.mayfly]) expect(d).toMatchObject({ results: [{ id: 'no-such-entry', status: { code: 5 } }] });

    await mayflyCli(['entry', 'delete', '-entryID', ids.mayfly]);
    const imported = await mayflyCli(['entry', 'create', '-data', '-', '-output', 'json'], exported);
    expect(imported.code, imported.stderr).toBe(0);
    const entry = JSON.parse(imported.stdout).results[0].entry;
    const original = JSON.parse(exported).entries[0];
    for (const k of ['id', 'spiffe_id', 'parent_id', 'selectors', 'x509_svid_ttl', 'dns_names', 'hint', 'expires_at']) expect(entry[k], k).toEqual(original[k]);
  });
});
