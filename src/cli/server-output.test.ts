/**
 * What scripts rely on from `mayfly-server`'s client commands, as real processes against a
 * real server: the documented exit codes (cli/cli-error: 2 invalid input, 3 not found,
 * 4 permission denied, 5 unreachable), `entry show -output json | entry create -data -`
 * round-tripping, `-data` batches larger than the server's per-call limit (split, with
 * progress and a summary of what failed and why on stderr), `entry delete -file`,
 * `entry show -output table`, `-hint` and `agent list`'s SPIRE filters.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from './cli-error.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'mayfly-server.js');
const TD = 'example.test';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], opts: { input?: string; uid?: number } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { timeout: 120_000, maxBuffer: 64 * 1024 * 1024, ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}) },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(opts.input ?? '');
  });
}

let dir: string;
let sock: string;
let server: ChildProcess;
let exited: Promise<unknown>;
const s = (...args: string[]): string[] => [...args, '-socketPath', sock];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-cli-out-'));
  sock = join(dir, 'private', 'api.sock');
  server = spawn(process.execPath, [BIN, 'run', '-trustDomain', TD, '-dataDir', join(dir, 'data'), '-socketPath', sock, '-serverPort', '0', '-metricsPort', '0'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  exited = new Promise((r) => server.once('exit', r));
  await new Promise<void>((resolve, reject) => {
    const lines: string[] = [];
    createInterface({ input: server.stderr as NodeJS.ReadableStream }).on('line', (l) => {
      lines.push(l);
      if (l.includes('mayfly server started')) resolve();
    });
    void exited.then(() => reject(new Error(`server exited: ${lines.join('\n')}`)));
  });
}, 60_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

const entryArgs = (path: string, ...more: string[]): string[] =>
  s('entry', 'create', '-spiffeID', `spiffe://${TD}${path}`, '-parentID', `spiffe://${TD}/host`, '-selector', `unix:uid:${path.length}`, ...more);

describe('exit codes', () => {
  it('2 invalid input, 3 not found, 5 unreachable, 1 for other refusals', async () => {
    const stale = join(dir, 'stale.sock');
    // A socket file nobody listens on: its process was killed before it could remove it.
    await new Promise<void>((resolve) => {
      const c = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
      c.once('exit', () => resolve());
    });
    await cli(entryArgs('/dup'));
    const cases: [string[], number, RegExp][] = [
      [s('entry', 'show', '-spiffeId', 'x'), EXIT_CODES.invalidInput, /flag provided but not defined/],
      [s('entry', 'show', '-output', 'yaml'), EXIT_CODES.invalidInput, /invalid -output/],
      [s('nosuch'), EXIT_CODES.invalidInput, /unknown command/],
      [entryArgs('/a', '-storeSVID'), EXIT_CODES.invalidInput, /-storeSVID: Mayfly has no SVIDStore plugins/],
      [s('entry', 'create', '-spiffeID', 'spiffe://other.test/a', '-parentID', `spiffe://${TD}/h`, '-selector', 'unix:uid:1'), EXIT_CODES.invalidInput, /INVALID_ARGUMENT/],
      [s('entry', 'show', '-entryID', 'nope'), EXIT_CODES.notFound, /NOT_FOUND/],
      [s('entry', 'delete', '-entryID', 'nope'), EXIT_CODES.notFound, /NOT_FOUND/],
      [s('agent', 'show', '-spiffeID', `spiffe://${TD}/spire/agent/none`), EXIT_CODES.notFound, /NOT_FOUND/],
      [['entry', 'show', '-socketPath', join(dir, 'none.sock')], EXIT_CODES.unreachable, /cannot reach the server's admin socket/],
      [['entry', 'show', '-socketPath', stale], EXIT_CODES.unreachable, /cannot reach the server's admin socket/],
      [entryArgs('/dup'), EXIT_CODES.failed, /ALREADY_EXISTS/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    results.forEach((r, i) => {
      const [args, code, re] = cases[i] as [string[], number, RegExp];
      expect({ args: args.join(' '), code: r.code }).toEqual({ args: args.join(' '), code });
      expect(r.stderr, args.join(' ')).toMatch(re);
    });
  });

  it('4 when the socket may not be opened (another user, who cannot enter its directory)', async () => {
    // The test directory is 0700 and root's when the suite runs as root: user 65534 may not enter it.
    // Run as another user, the suite makes the socket's directory unreadable to itself.
    const asRoot = process.getuid?.() === 0;
    const locked = join(dir, 'locked');
    const lockedSock = join(locked, 'api.sock');
    mkdirSync(locked);
    writeFileSync(lockedSock, '');
    if (!asRoot) chmodSync(locked, 0o000);
    try {
      const r = await cli(['entry', 'count', '-socketPath', lockedSock], asRoot ? { uid: 65534 } : {});
      expect(r.stderr).toMatch(/permission denied on the server's admin socket/);
      expect(r.code).toBe(EXIT_CODES.permissionDenied);
    } finally {
      chmodSync(locked, 0o700);
    }
  });
});

describe('entries in bulk', () => {
  it('entry show -output json piped into entry create -data round-trips', async () => {
    for (const p of ['/rt/a', '/rt/b']) expect((await cli(entryArgs(p, '-hint', 'rt', '-dns', 'x.example.test', '-x509SVIDTTL', '120'))).code).toBe(0);
    const before = await cli(s('entry', 'show', '-hint', 'rt', '-output', 'json'));
    const exported = JSON.parse(before.stdout) as { entries: { id: string }[] };
    expect(exported.entries).toHaveLength(2);
    writeFileSync(join(dir, 'ids.json'), JSON.stringify({ ids: exported.entries.map((e) => e.id) }));
    const del = await cli(s('entry', 'delete', '-file', join(dir, 'ids.json')));
    expect(del.code).toBe(0);
    expect(del.stdout.match(/^Deleted entry with ID: /gm)).toHaveLength(2);

    const created = await cli(s('entry', 'create', '-data', '-', '-output', 'json'), { input: before.stdout });
    expect(created.code, created.stderr).toBe(0);
    const after = await cli(s('entry', 'show', '-hint', 'rt', '-output', 'json'));
    const strip = (doc: string): unknown => (JSON.parse(doc) as { entries: Record<string, unknown>[] }).entries.map(({ created_at: _c, ...rest }) => rest);
    expect(strip(after.stdout)).toEqual(strip(before.stdout));
  });

  it('-data above the per-call limit is sent in chunks, with progress and a summary naming each failure', async () => {
    const n = 1100;
    const entries = Array.from({ length: n }, (_, i) => ({
      spiffe_id: `spiffe://${TD}/bulk/${i}`,
      parent_id: `spiffe://${TD}/host`,
      selectors: [{ type: 'unix', value: `uid:${i}` }],
    }));
    // Two that the server refuses: outside the trust domain, and the reserved /spire namespace.
    entries[7] = { ...entries[7]!, spiffe_id: 'spiffe://other.test/bulk/7' };
    entries[900] = { ...entries[900]!, spiffe_id: `spiffe://${TD}/spire/agent/x` };
    writeFileSync(join(dir, 'bulk.json'), JSON.stringify({ entries }));
    const r = await cli(s('entry', 'create', '-data', join(dir, 'bulk.json'), '-output', 'json'));
    expect(r.code).toBe(EXIT_CODES.invalidInput); // every failure was INVALID_ARGUMENT
    const doc = JSON.parse(r.stdout) as { results: { status: { code: number }; entry: { spiffe_id: { path: string } } }[] };
    expect(doc.results).toHaveLength(n);
    expect(doc.results.filter((x) => x.status.code !== 0).map((x) => x.entry.spiffe_id.path)).toEqual(['/bulk/7', '/spire/agent/x']);
    const err = r.stderr.split('\n');
    expect(err).toContain('created 500 of 1100 entries');
    expect(err).toContain('created 1100 of 1100 entries');
    expect(err).toContain('Created 1098 entries, 2 failed:');
    expect(err.some((l) => /^ {2}entries\[7\] spiffe:\/\/other\.test\/bulk\/7: .*INVALID_ARGUMENT/.test(l))).toBe(true);
    expect(err.some((l) => /^ {2}entries\[900\] .*reserved.*INVALID_ARGUMENT/.test(l))).toBe(true);
    const errorLines = err.filter((l) => l.startsWith('Error: '));
    expect(errorLines).toHaveLength(1);
    expect(errorLines[0]).toMatch(/^Error: failed to create 2 of 1100 entries \(first: entries\[7\]: /);
    const count = JSON.parse((await cli(s('entry', 'count', '-output', 'json'))).stdout) as { count: number };
    expect(count.count).toBeGreaterThanOrEqual(1098);
  });

  it('entry show -output table prints one line per entry under a header', async () => {
    const r = await cli(s('entry', 'show', '-hint', 'rt', '-output', 'table'));
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ENTRY ID +SPIFFE ID +PARENT ID +REVISION +SELECTORS$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[1])).toEqual([`spiffe://${TD}/rt/a`, `spiffe://${TD}/rt/b`]);
    expect((await cli(s('agent', 'list', '-output', 'table'))).code).toBe(EXIT_CODES.invalidInput);
  });
});

describe('agent list filters', () => {
  it("accepts SPIRE's filters and refuses a malformed time", async () => {
    const ok = await cli(s('agent', 'list', '-banned', 'false', '-canReattest', 'true', '-attestationType', 'join_token', '-selector', 'a:b', '-expiresBefore', '2030-01-02 15:04:05 +0000 +00', '-output', 'json'));
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ agents: [], next_page_token: '' });
    const bad = await cli(s('agent', 'list', '-expiresBefore', 'tomorrow'));
    expect(bad.code).toBe(EXIT_CODES.invalidInput);
    expect(bad.stderr).toMatch(/-expiresBefore: date is not valid/);
  });
});
