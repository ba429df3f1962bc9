/**
 * Issue 16, finding 6(b): `mayfly-agent api fetch x509 -write DIR` and `mayfly-server
 * x509|jwt mint -write` against what another local user plants: a symlink at the target
 * or at the old predictable temporary name, their own file at the target, a directory
 * they own or can write to. Real files, a real server in-process, the real programs.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeWorkloadApi, makeFakeTrustDomain, x509Response, type FakeTrustDomain } from '../sdk/testing.js';
import { asRoot, giveToOtherUser, modeOf, OTHER_UID, tempDirs } from '../securefs/testing.js';
import { resolveServerConfig } from '../server/config.js';
import { createServerLogger } from '../server/observability.js';
import { ServerRunner } from '../server/runner.js';
import { importPkcs8 } from '../spiffe/keys.js';
import { registerAgentApiCommands } from './agent-api.js';
import { createProgram, runProgram } from './flags.js';
import { buildServerProgram } from './server-program.js';

const dirs = tempDirs('mayfly-cli-write-');
const serverDirs = tempDirs('mayfly-cli-write-server-');
let td: FakeTrustDomain;
let served: ReturnType<FakeTrustDomain['svid']>;
let api: FakeWorkloadApi;
let runner: ServerRunner;
let adminSocket: string;

beforeAll(async () => {
  td = makeFakeTrustDomain('example.org');
  served = td.svid('/web');
  api = await FakeWorkloadApi.start({ socketPath: join(serverDirs.make(), 'api.sock'), x509: x509Response(td, [served]) });
  const base = serverDirs.make();
  adminSocket = join(base, 'private', 'api.sock');
  const settings = resolveServerConfig(undefined, { dataDir: join(base, 'data'), socketPath: adminSocket, bindPort: 0, trustDomain: 'example.org' });
  settings.metrics.enabled = false;
  runner = new ServerRunner({ settings, logger: createServerLogger('error') });
  await runner.start();
});
afterAll(async () => {
  await api?.stop({ abrupt: true });
  await runner?.stop();
  serverDirs.cleanup();
});
afterEach(() => dirs.cleanup());

type Result = { code: number; out: string; err: string };

async function agentCli(argv: string[]): Promise<Result> {
  let out = '';
  let err = '';
  const program = createProgram({ name: 'mayfly-agent', io: { out: (t) => void (out += t), err: (t) => void (err += t), env: {} } });
  registerAgentApiCommands(program);
  return { code: await runProgram(program, argv), out, err };
}

async function serverCli(argv: string[]): Promise<Result> {
  let out = '';
  let err = '';
  const program = await buildServerProgram({ out: (t) => void (out += t), err: (t) => void (err += t), env: {} });
  return { code: await runProgram(program, [...argv, '-socketPath', adminSocket]), out, err };
}

const fetchInto = (dir: string): Promise<Result> => agentCli(['api', 'fetch', 'x509', '-socketPath', api.socketPath, '-write', dir, '-silent']);
const mintInto = (dir: string): Promise<Result> => serverCli(['x509', 'mint', '-spiffeID', 'spiffe://example.org/minted', '-write', dir]);

/** A file elsewhere that a planted symlink points at: it must never change. */
function victim(): string {
  const p = join(dirs.make(), 'victim');
  writeFileSync(p, 'original\n', { mode: 0o644 });
  return p;
}

function expectUntouched(path: string): void {
  expect(readFileSync(path, 'utf8')).toBe('original\n');
  expect(modeOf(path)).toBe(0o644);
}

function expectOurKey(path: string): void {
  const st = lstatSync(path);
  expect(st.isFile()).toBe(true);
  expect(st.uid).toBe(process.getuid?.());
  expect(st.mode & 0o7777).toBe(0o600);
  expect(() => importPkcs8(readFileSync(path, 'utf8'))).not.toThrow();
}

describe('mayfly-agent api fetch x509 -write', () => {
  it('refuses a symlink planted at svid.0.key: its target keeps its content and no key is written', async () => {
    const dir = dirs.make();
    const target = victim();
    symlinkSync(target, join(dir, 'svid.0.key'));
    const r = await fetchInto(dir);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`Error: ${join(dir, 'svid.0.key')} exists and is a symlink, not a regular file; refusing to write through it: remove it, or write somewhere else\n`);
    expectUntouched(target);
    expect(lstatSync(join(dir, 'svid.0.key')).isSymbolicLink()).toBe(true);
  });

  it.skipIf(!asRoot)("replaces a file another user planted at svid.0.key: the key lands in a new file, ours, 0600", async () => {
    const dir = dirs.make();
    const planted = join(dir, 'svid.0.key');
    writeFileSync(planted, '');
    chmodSync(planted, 0o666);
    giveToOtherUser(planted);
    const before = statSync(planted).ino;
    expect(await fetchInto(dir)).toEqual({ code: 0, out: '', err: '' });
    expectOurKey(planted);
    expect(statSync(planted).ino).not.toBe(before);
    expect(createPublicKey(importPkcs8(readFileSync(planted, 'utf8')).privateKey).equals(served.key.publicKey)).toBe(true);
    expect(modeOf(join(dir, 'svid.0.pem'))).toBe(0o644);
  });

  it.skipIf(!asRoot)('refuses a DIR owned by another user, or 0777 without the sticky bit, writing nothing', async () => {
    const theirs = join(dirs.make(), 'theirs');
    mkdirSync(theirs);
    giveToOtherUser(theirs);
    const r = await fetchInto(theirs);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`directory ${theirs} is owned by uid ${OTHER_UID}`);
    expect(readdirSync(theirs)).toEqual([]);

    const open = join(dirs.make(), 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const r2 = await fetchInto(open);
    expect(r2.code).toBe(1);
    expect(r2.err).toContain(`directory ${open} has mode 0777`);
    expect(readdirSync(open)).toEqual([]);
  });
});

describe('mayfly-server x509 mint -write / jwt mint -write', () => {
  it('is not redirected by a symlink at the old predictable temporary name: the key lands in key.pem, 0600', async () => {
    const dir = dirs.make();
    const target = victim();
    symlinkSync(target, join(dir, `key.pem.${process.pid}.tmp`));
    const r = await mintInto(dir);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expectUntouched(target);
    expectOurKey(join(dir, 'key.pem'));
    expect(modeOf(join(dir, 'svid.pem'))).toBe(0o644);
  });

  it('refuses a symlink planted at key.pem, and at the jwt mint -write file, leaving their targets alone', async () => {
    const dir = dirs.make();
    const target = victim();
    symlinkSync(target, join(dir, 'key.pem'));
    const r = await mintInto(dir);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${join(dir, 'key.pem')} exists and is a symlink`);
    expectUntouched(target);

    const token = join(dir, 'token.jwt');
    symlinkSync(target, token);
    const j = await serverCli(['jwt', 'mint', '-spiffeID', 'spiffe://example.org/minted', '-audience', 'a', '-write', token]);
    expect(j.code).toBe(1);
    expect(j.err).toContain(`${token} exists and is a symlink`);
    expectUntouched(target);
  });

  it('refuses a 0777 -write directory', async () => {
    const open = join(dirs.make(), 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const r = await mintInto(open);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`directory ${open} has mode 0777`);
    expect(readdirSync(open)).toEqual([]);
  });
});
