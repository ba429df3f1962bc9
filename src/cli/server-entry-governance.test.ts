/**
 * Entry owners, labels and purpose (issue 11) through `mayfly-server entry`, as real
 * processes against a real server whose server.conf sets `require_owner = true`: the
 * flags, the filters of `entry show`, the JSON and text output, the policy's refusal and
 * the bounds (over-long owner, labels, purpose; too many labels), each refused with
 * INVALID_ARGUMENT and a non-zero exit naming the field.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from './cli-error.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'mayfly-server.js');
const TD = 'gov.test';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end('');
  });
}

let dir: string;
let sock: string;
let server: ChildProcess;
let exited: Promise<unknown>;
const s = (...args: string[]): string[] => [...args, '-socketPath', sock];
const create = (n: number, ...more: string[]): Promise<Result> =>
  cli(s('entry', 'create', '-spiffeID', `spiffe://${TD}/w/${n}`, '-parentID', `spiffe://${TD}/host`, '-selector', `unix:uid:${n}`, ...more));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-cli-gov-'));
  sock = join(dir, 'private', 'api.sock');
  writeFileSync(
    join(dir, 'server.conf'),
    `server {\n  bind_address = "127.0.0.1"\n  bind_port = "0"\n  socket_path = "${sock}"\n  trust_domain = "${TD}"\n  data_dir = "${join(dir, 'data')}"\n  require_owner = true\n}\n`,
  );
  server = spawn(process.execPath, [BIN, 'run', '-config', join(dir, 'server.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
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

describe('entry owners, labels and purpose', () => {
  it('creates, updates, shows and filters them; require_owner refuses an entry without one', async () => {
    const none = await create(1);
    expect(none.code).toBe(EXIT_CODES.invalidInput);
    expect(none.stderr).toMatch(/^Error: failed to create entry: .*has no owner, and this server requires one \(server\.conf: require_owner = true\).*\(INVALID_ARGUMENT\)\n$/);

    const a = await create(1, '-owner', 'team-payments', '-label', 'env=prod', '-label', 'tier=web', '-purpose', 'serves checkout', '-output', 'json');
    expect(a.code, a.stderr).toBe(0);
    const made = (JSON.parse(a.stdout) as { results: { entry: { id: string; owner: string; labels: Record<string, string>; purpose: string } }[] }).results[0]!.entry;
    expect(made).toMatchObject({ owner: 'team-payments', labels: { env: 'prod', tier: 'web' }, purpose: 'serves checkout' });
    expect((await create(2, '-owner', 'team-payments', '-label', 'env=dev')).code).toBe(0);
    expect((await create(3, '--owner', 'team-risk', '--label', 'env=prod')).code).toBe(0);

    const ids = async (...filter: string[]): Promise<string[]> => {
      const r = await cli(s('entry', 'show', ...filter, '-output', 'json'));
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { entries: { spiffe_id: { path: string } }[] }).entries.map((e) => e.spiffe_id.path);
    };
    expect(await ids('-owner', 'team-payments')).toEqual(['/w/1', '/w/2']);
    expect(await ids('-label', 'env=prod')).toEqual(['/w/1', '/w/3']);
    expect(await ids('-owner', 'team-payments', '-label', 'env=prod', '-label', 'tier=web')).toEqual(['/w/1']);
    expect(await ids('-owner', 'nobody')).toEqual([]);

    const text = await cli(s('entry', 'show', '-entryID', made.id));
    expect(text.stdout).toMatch(/Owner\s+: team-payments\n/);
    expect(text.stdout).toMatch(/Label\s+: env=prod\n/);
    expect(text.stdout).toMatch(/Purpose\s+: serves checkout\n/);

    // update replaces the whole entry: dropping -owner is refused under require_owner.
    const upd = (...more: string[]): Promise<Result> =>
      cli(s('entry', 'update', '-entryID', made.id, '-spiffeID', `spiffe://${TD}/w/1`, '-parentID', `spiffe://${TD}/host`, '-selector', 'unix:uid:1', ...more));
    expect((await upd()).stderr).toMatch(/has no owner/);
    const moved = await upd('-owner', 'team-risk', '-label', 'env=staging');
    expect(moved.code, moved.stderr).toBe(0);
    expect(await ids('-owner', 'team-risk')).toEqual(['/w/1', '/w/3']);
    expect(await ids('-label', 'env=prod')).toEqual(['/w/3']);
  });

  it('refuses over-long owners, labels and purposes and too many labels, naming the field', async () => {
    const cases: [string[], RegExp][] = [
      [['-owner', 'o'.repeat(257)], /owner is longer than 256 bytes/],
      [['-owner', 'x', '-purpose', 'p'.repeat(1025)], /purpose is longer than 1024 bytes/],
      [['-owner', 'x', ...Array.from({ length: 33 }, (_, i) => ['-label', `k${i}=v`]).flat()], /labels holds 33 labels; the limit is 32/],
      [['-owner', 'x', '-label', `k=${'v'.repeat(257)}`], /value is longer than 256 bytes/],
      [['-owner', 'x', '-label', 'k=<script>\u0007'], /value holds a control character/],
      [['-owner', 'a\tb'], /owner holds a control character/],
    ];
    for (const [flags, want] of cases) {
      const r = await create(9, ...flags);
      expect(r.code, r.stderr).toBe(EXIT_CODES.invalidInput);
      expect(r.stderr).toMatch(want);
      expect(r.stderr).toMatch(/INVALID_ARGUMENT/);
    }
    // Malformed on the command line: refused before any call.
    const noEq = await create(9, '-owner', 'x', '-label', 'novalue');
    expect(noEq.code).toBe(EXIT_CODES.invalidInput);
    expect(noEq.stderr).toMatch(/-label "novalue": want key=value/);
    const twice = await create(9, '-owner', 'x', '-label', 'a=1', '-label', 'a=2');
    expect(twice.stderr).toMatch(/label "a" is given twice/);
    for (const [key, why] of [['__proto__', /may only hold letters/], ['k'.repeat(64), /is longer than 63 bytes/]] as const) {
      const r = await create(9, '-owner', 'x', '-label', `${key}=v`);
      expect(r.code).toBe(EXIT_CODES.invalidInput);
      expect(r.stderr).toMatch(why);
    }
    const filter = await cli(s('entry', 'show', '-owner', 'o'.repeat(300)));
    expect(filter.code).toBe(EXIT_CODES.invalidInput);
    expect(filter.stderr).toMatch(/filter\.by_owner is longer than 256 bytes/);
    expect(JSON.parse((await cli(s('entry', 'count', '-output', 'json'))).stdout)).toEqual({ count: 3 });
  });
});
