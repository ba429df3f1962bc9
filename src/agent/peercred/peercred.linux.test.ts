import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMayflyError } from '../../spiffe/errors.js';
import { parseProcStat, readPeerCredentials, socketFd, verifyCaller } from './peercred.linux.js';
import * as portable from './index.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mayfly-peercred-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A Unix socket server handing out its accepted sockets one by one. */
async function listen(path: string): Promise<{ server: net.Server; next: () => Promise<net.Socket> }> {
  const waiting: Array<(s: net.Socket) => void> = [];
  const ready: net.Socket[] = [];
  const server = net.createServer((s) => {
    const w = waiting.shift();
    if (w) w(s);
    else ready.push(s);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    server,
    next: () => new Promise((resolve) => {
      const s = ready.shift();
      if (s) resolve(s);
      else waiting.push(resolve);
    }),
  };
}

/** A separate node process that connects to `path` and stays until its stdin closes. */
function connectFromChild(path: string): ChildProcess {
  return spawn(process.execPath, [
    '-e',
    `const s = require('node:net').connect(${JSON.stringify(path)});
     s.on('error', () => process.exit(2));
     process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`,
  ], { stdio: ['pipe', 'ignore', 'inherit'] });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

describe('readPeerCredentials (Linux, real Unix socket)', () => {
  it('reports the connecting child process pid, uid and gid, and its start time', async () => {
    const path = join(dir, 's.sock');
    const { server, next } = await listen(path);
    const child = connectFromChild(path);
    try {
      const sock = await next();
      const cred = await readPeerCredentials(sock);
      expect(cred.pid).toBe(child.pid);
      expect(cred.pid).not.toBe(process.pid);
      expect(cred.uid).toBe(process.getuid?.());
      expect(cred.gid).toBe(process.getgid?.());
      expect(cred.startTime).toBeGreaterThan(0);
      expect(cred.executable).toMatch(/^\d+:\d+$/);
      expect(verifyCaller(cred)).toEqual({ ok: true });
      // The portable entry point answers the same on Linux.
      expect(await portable.readPeerCredentials(sock)).toEqual(cred);
      sock.destroy();

      // The caller exits (and is reaped): the guard must now say "not the same process".
      child.stdin?.end();
      await exited(child);
      expect(verifyCaller(cred)).toMatchObject({ ok: false, reason: 'exited' });
    } finally {
      child.kill();
      server.close();
    }
  });

  it('detects a pid now held by a different process (different start time)', async () => {
    const path = join(dir, 's.sock');
    const { server, next } = await listen(path);
    const child = connectFromChild(path);
    try {
      const cred = await readPeerCredentials(await next());
      // Same pid, different start: what a reused pid looks like.
      expect(verifyCaller({ ...cred, startTime: cred.startTime + 1 })).toMatchObject({ ok: false, reason: 'pid-reused' });
      // A fake /proc where the pid was taken over by a newer process with a tricky name.
      const procRoot = join(dir, 'proc');
      await mkdir(join(procRoot, String(cred.pid)), { recursive: true });
      await writeFile(join(procRoot, String(cred.pid), 'status'), `Name:\tnode\nUid:\t${cred.uid}\t${cred.uid}\t${cred.uid}\t${cred.uid}\nGid:\t${cred.gid}\t${cred.gid}\t${cred.gid}\t${cred.gid}\nGroups:\t\n`);
      await symlink(await realpath(`/proc/${cred.pid}/exe`), join(procRoot, String(cred.pid), 'exe'));
      const fields = (start: number, state = 'S') =>
        `${cred.pid} (evil) ${cred.startTime} (x) ${state} ${'1 '.repeat(18)}${start} 0 0\n`;
      await writeFile(join(procRoot, String(cred.pid), 'stat'), fields(cred.startTime + 500));
      expect(verifyCaller(cred, { procRoot })).toMatchObject({ ok: false, reason: 'pid-reused' });
      await writeFile(join(procRoot, String(cred.pid), 'stat'), fields(cred.startTime));
      expect(verifyCaller(cred, { procRoot })).toEqual({ ok: true });
      const pidDir = join(procRoot, String(cred.pid));
      // Same process, but it exec'd a setuid binary: effective uid differs from SO_PEERCRED's.
      const status = (uid: number) => `Name:\tx\nUid:\t${cred.uid}\t${uid}\t${uid}\t${uid}\nGid:\t${cred.gid}\t${cred.gid}\t${cred.gid}\t${cred.gid}\n`;
      await writeFile(join(pidDir, 'status'), status(cred.uid + 1));
      expect(verifyCaller(cred, { procRoot })).toMatchObject({ ok: false, reason: 'credentials-changed' });
      await writeFile(join(pidDir, 'status'), status(cred.uid));
      // Same process and uid, but it exec'd another file.
      await rm(join(pidDir, 'exe'));
      await symlink('/bin/sh', join(pidDir, 'exe'));
      expect(verifyCaller(cred, { procRoot })).toMatchObject({ ok: false, reason: 'executable-changed' });
      await rm(join(pidDir, 'exe'));
      await symlink(await realpath(`/proc/${cred.pid}/exe`), join(pidDir, 'exe'));
      expect(verifyCaller(cred, { procRoot })).toEqual({ ok: true });
      // An exited but unreaped process (zombie) is not the caller any more.
      await writeFile(join(procRoot, String(cred.pid), 'stat'), fields(cred.startTime, 'Z'));
      expect(verifyCaller(cred, { procRoot })).toMatchObject({ ok: false, reason: 'exited' });
    } finally {
      child.kill();
      server.close();
    }
  });

  it('refuses a peer that exited before accept-time bookkeeping', async () => {
    const path = join(dir, 's.sock');
    const { server, next } = await listen(path);
    const child = connectFromChild(path);
    try {
      const sock = await next();
      child.stdin?.end();
      await exited(child);
      // SO_PEERCRED still reports the old pid, but there is no process left to attest.
      const err = await readPeerCredentials(sock).catch((e: unknown) => e);
      expect(isMayflyError(err, 'ERR_PEER_CREDENTIALS')).toBe(true);
    } finally {
      server.close();
    }
  });

  it('refuses a TCP socket (the kernel holds no peer credentials) and a closed socket', async () => {
    const server = net.createServer();
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    try {
      const sock = await accepted;
      const err = await readPeerCredentials(sock).catch((e: unknown) => e);
      expect(isMayflyError(err, 'ERR_PEER_CREDENTIALS')).toBe(true);
      sock.destroy();
      expect(() => socketFd(sock)).toThrow(/no open file descriptor/);
    } finally {
      client.destroy();
      server.close();
    }
  });
});

describe('parseProcStat', () => {
  it('counts fields after the last parenthesis, whatever the command name holds', () => {
    const tail = 'S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 99 100';
    expect(parseProcStat(`77 (a b) c) ) 9 (d) ${tail}\n`)).toEqual({ state: 'S', startTime: 424242 });
    expect(parseProcStat(`77 (node) ${tail}`)).toEqual({ state: 'S', startTime: 424242 });
  });

  it('rejects malformed input', () => {
    expect(() => parseProcStat('77 node S 1 2')).toThrow(/parenthesis/);
    expect(() => parseProcStat('77 (node) S 1 2')).toThrow(/start time/);
  });
});
