/**
 * The exec-after-connect attack (issue 16, finding 1), against a real agent on a real Unix
 * socket, by real unprivileged processes:
 *
 *   an unprivileged process (uid 65534) connects to the Workload API, forks (the child keeps
 *   the socket), and the parent execs a setuid-root binary that blocks (a root-owned 4755
 *   copy of `sleep`), or another binary of its own uid that has an identity of its own;
 *   the child then sends FetchX509SVID on the inherited socket.
 *
 * Before the fix the child received the SVID and private key of the `unix:uid:0` entry (or
 * of the other binary's `unix:path` entry). Now every such call is PERMISSION_DENIED, and a
 * stream opened before the exec ends at its next update. The agent is the real
 * `MayflyAgent` (real endpoint, SO_PEERCRED, unix attestor with path discovery) over the
 * in-memory `FakeServer` (a real CA); the attacker is Debian's python3 plus a Node HTTP/2
 * client speaking gRPC on the inherited descriptor. Runs as root (CI does): it starts
 * processes as uid 65534 and makes a setuid-root binary.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnixWorkloadAttestor } from '../attestors/workload/unix/unix.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { MayflyAgent } from './agent.js';
import type { AgentLogger } from './logger.js';
import { FakeServer, ManualScheduler, testEntry } from './testing.js';

const NOBODY = 65534;
const PYTHON = '/usr/bin/python3';
const AGENT_ID = 'spiffe://example.org/spire/agent/join_token/tok';

/**
 * connect → (optionally wait until the agent accepted us: its SETTINGS frame is readable) →
 * fork. The child waits until the parent runs the target binary (its comm changes), then
 * execs the Node client with the socket as fd 3 (and, for a stream, a pipe as fd 4 whose
 * byte tells the parent the first message arrived, so the exec comes after it).
 */
const ATTACKER = String.raw`
import os, socket, sys, time
path, target, node, client, when, mode = sys.argv[1:7]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
if when == 'after-accept':
    s.recv(1, socket.MSG_PEEK)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    ppid = os.getppid()
    a, b = os.dup(s.fileno()), os.dup(w)
    os.dup2(a, 3)
    os.dup2(b, 4)
    if mode == 'unary':
        name = os.path.basename(target)[:15]
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if open('/proc/%d/comm' % ppid).read().strip() == name:
                    break
            except OSError:
                pass
            time.sleep(0.005)
    os.execv(node, [node, client])
else:
    os.close(w)
    if mode == 'stream':
        os.read(r, 1)
    os.execv(target, [target, '60'])
`;

/** gRPC over the inherited socket (fd 3): one FetchX509SVID; prints one JSON line per event. */
const CLIENT = String.raw`
const net = require('node:net'); const http2 = require('node:http2'); const fs = require('node:fs');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sock = new net.Socket({ fd: 3, readable: true, writable: true });
const session = http2.connect('http://localhost', { createConnection: () => sock });
session.on('error', (e) => { out({ error: String(e) }); process.exit(0); });
const req = session.request({ ':method': 'POST', ':path': '/SpiffeWorkloadAPI/FetchX509SVID',
  'content-type': 'application/grpc', te: 'trailers', 'workload.spiffe.io': 'true' });
let buf = Buffer.alloc(0); let told = false;
const done = (h) => { out({ status: Number(h['grpc-status']) }); process.exit(0); };
req.on('response', (h) => { if (h['grpc-status'] !== undefined) done(h); });
req.on('trailers', done);
req.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
    const msg = buf.subarray(5, 5 + buf.readUInt32BE(1)).toString('latin1');
    buf = buf.subarray(5 + buf.readUInt32BE(1));
    // X509SVID.spiffe_id (field 1, a string): tag 0x0a, a one-byte length, the ID.
    const ids = [];
    for (let i = msg.indexOf('spiffe://'); i >= 2; i = msg.indexOf('spiffe://', i + 1)) {
      if (msg.charCodeAt(i - 2) === 0x0a) ids.push(msg.slice(i, i + msg.charCodeAt(i - 1)));
    }
    out({ message: ids });
    if (!told) { told = true; fs.writeSync(4, '1'); }
  }
});
req.on('error', (e) => { out({ error: String(e) }); process.exit(0); });
req.end(Buffer.from([0, 0, 0, 0, 0]));
`;

let dir: string;
let sched: ManualScheduler;
let server: FakeServer;
let agent: MayflyAgent;
const warnings: string[] = [];
const children: ChildProcess[] = [];

const logger: AgentLogger = {
  debug() {},
  info() {},
  warn(_obj: object, msg: string) {
    warnings.push(msg);
  },
  error() {},
};

beforeAll(async () => {
  if (process.geteuid?.() !== 0) throw new Error('this test starts processes as uid 65534 and makes a setuid-root binary: it must run as root (CI does)');
  dir = mkdtempSync(join(tmpdir(), 'mayfly-exec-attack-'));
  chmodSync(dir, 0o755);
  // The setuid-root binary the attacker's parent execs, and a plain binary of the attacker's
  // uid that has an identity of its own (unix:path).
  copyFileSync('/bin/sleep', join(dir, 'rootsleep'));
  chownSync(join(dir, 'rootsleep'), 0, 0);
  chmodSync(join(dir, 'rootsleep'), 0o4755);
  copyFileSync('/bin/sleep', join(dir, 'trustedsleep'));
  chmodSync(join(dir, 'trustedsleep'), 0o755);
  writeFileSync(join(dir, 'attacker.py'), ATTACKER, { mode: 0o644 });
  writeFileSync(join(dir, 'client.js'), CLIENT, { mode: 0o644 });
  mkdirSync(join(dir, 'public'), { mode: 0o755 });

  sched = new ManualScheduler(new Date());
  server = new FakeServer({ scheduler: sched, joinTokens: ['tok'] });
  writeFileSync(join(dir, 'roots.pem'), pemEncodeCertificates([server.ca.certificate]));
  server.entries = [
    testEntry({ entryId: 'root', spiffeId: 'spiffe://example.org/root-only', parentId: AGENT_ID, selectors: [{ type: 'unix', value: 'uid:0' }] }),
    testEntry({
      entryId: 'trusted',
      spiffeId: 'spiffe://example.org/trusted-binary',
      parentId: AGENT_ID,
      selectors: [
        { type: 'unix', value: `uid:${NOBODY}` },
        { type: 'unix', value: `path:${join(dir, 'trustedsleep')}` },
      ],
    }),
    testEntry({ entryId: 'nobody', spiffeId: 'spiffe://example.org/nobody', parentId: AGENT_ID, selectors: [{ type: 'unix', value: `uid:${NOBODY}` }] }),
  ];
  agent = new MayflyAgent({
    serverAddress: 'unused:1',
    trustDomain: 'example.org',
    dataDir: join(dir, 'data'),
    socketPath: join(dir, 'public', 'api.sock'),
    joinToken: 'tok',
    trustBundlePath: join(dir, 'roots.pem'),
    workloadAttestors: [new UnixWorkloadAttestor({ discoverWorkloadPath: true })],
    scheduler: sched,
    random: () => 0.5,
    serverClientFactory: (c) => server.client(c),
    logger,
  });
  await agent.start();
  await agent.whenReady(10_000);
  await agent.cache?.settled();
});

afterAll(async () => {
  for (const c of children) {
    try {
      process.kill(-(c.pid as number), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await agent?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Event {
  status?: number;
  message?: string[];
  error?: string;
}

/** Starts the attack as uid 65534; returns its pid (the one that connects, then execs) and its events. */
function attack(target: string, when: 'after-accept' | 'at-once', mode: 'unary' | 'stream'): { pid: number; next: () => Promise<Event> } {
  const child = spawn(PYTHON, [join(dir, 'attacker.py'), agent.socketPath, join(dir, target), process.execPath, join(dir, 'client.js'), when, mode], {
    uid: NOBODY,
    gid: NOBODY,
    cwd: dir,
    detached: true,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    pid: child.pid as number,
    next: async () => {
      const line = await lines.next();
      if (line.done === true) throw new Error('the attacker ended without a result');
      return JSON.parse(line.value as string) as Event;
    },
  };
}

/** Waits until `pid` runs `name` (the attacker's parent has exec'd). */
async function execed(pid: number, name: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`process ${pid} never ran ${name}`);
}

const PERMISSION_DENIED = 7;

describe('exec after connect (real agent, real unprivileged processes)', () => {
  it('the setuid-root exec after accept gets PERMISSION_DENIED, not the uid 0 entry\'s SVID and key', async () => {
    const { pid, next } = attack('rootsleep', 'after-accept', 'unary');
    const got = await next();
    await execed(pid, 'rootsleep');
    // The parent really runs as root now: what the attack relies on.
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^Uid:\t65534\t0\t/m);
    expect(got).toEqual({ status: PERMISSION_DENIED });
    expect(warnings.some((w) => /no longer the process that connected/.test(w))).toBe(true);
  });

  it('the setuid-root exec right after connect (before or after accept) gets PERMISSION_DENIED', async () => {
    const { next } = attack('rootsleep', 'at-once', 'unary');
    expect(await next()).toEqual({ status: PERMISSION_DENIED });
  });

  it('an exec into another binary of the same uid after accept does not borrow its unix:path identity', async () => {
    const { next } = attack('trustedsleep', 'after-accept', 'unary');
    expect(await next()).toEqual({ status: PERMISSION_DENIED });
  });

  it('a stream opened before the exec ends PERMISSION_DENIED at its next update instead of serving on', async () => {
    const { pid, next } = attack('rootsleep', 'after-accept', 'stream');
    // Before the exec the caller is plain uid 65534 running python: its own identity.
    const first = await next();
    expect(first.message).toEqual(['spiffe://example.org/nobody']);
    await execed(pid, 'rootsleep');
    // Any change reaches every stream of the caller's selectors: a second entry for uid 65534.
    server.setEntries([
      ...server.entries,
      testEntry({ entryId: 'nobody-2', spiffeId: 'spiffe://example.org/nobody-two', parentId: AGENT_ID, selectors: [{ type: 'unix', value: `uid:${NOBODY}` }] }),
    ]);
    await agent.cache?.settled();
    expect(await next()).toEqual({ status: PERMISSION_DENIED });
  });
});
