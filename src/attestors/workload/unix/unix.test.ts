import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isMayflyError } from '../../../spiffe/errors.js';
import { attestWorkload, type WorkloadAttestor } from '../attestor.js';
import { runWorkloadAttestorConformance } from '../conformance.js';
import { callerOf } from '../testing.js';
import { parseIdNames, parseProcStatus, UnixWorkloadAttestor } from './unix.js';

runWorkloadAttestorConformance('unix', { attestor: () => new UnixWorkloadAttestor({ discoverWorkloadPath: true }) });

const children: ChildProcess[] = [];
afterAll(() => children.forEach((c) => c.kill('SIGKILL')));

async function startSleep(opts: { uid?: number; gid?: number } = {}): Promise<number> {
  const child = spawn('sleep', ['60'], { stdio: 'ignore', ...opts });
  children.push(child);
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return child.pid!;
}

const values = (sels: Array<{ value: string }>): string[] => sels.map((s) => s.value);

describe('unix workload attestor', () => {
  it('reports the uid, gid and groups the kernel has for the process', async () => {
    const pid = await startSleep();
    const status = parseProcStatus(await readFile(`/proc/${pid}/status`, 'utf8'));
    const sels = values(await new UnixWorkloadAttestor().attest(callerOf(pid)));
    expect(sels).toContain(`uid:${process.geteuid!()}`);
    expect(sels).toContain(`gid:${process.getegid!()}`);
    for (const g of status.groups) expect(sels).toContain(`supplementary_gid:${g}`);
    expect(sels.some((s) => s.startsWith('path:'))).toBe(false);
  });

  it('sees a process of another user as that user (needs root to start one)', async () => {
    // Like the interop tests that run clients as other uids: fail loudly rather than skip.
    if (process.geteuid!() !== 0) throw new Error('this test starts a process as uid 65534 and must run as root (CI does)');
    const pid = await startSleep({ uid: 65534, gid: 65534 });
    const sels = values(await new UnixWorkloadAttestor().attest(callerOf(pid)));
    expect(sels).toContain('uid:65534');
    expect(sels).toContain('gid:65534');
    const passwd = parseIdNames(await readFile('/etc/passwd', 'utf8'));
    if (passwd.has(65534)) expect(sels).toContain(`user:${passwd.get(65534)}`);
    expect(sels).not.toContain(`uid:0`);
  });

  it('discovers the executable path and hashes the binary itself', async () => {
    const pid = await startSleep();
    const exe = await realpath(`/proc/${pid}/exe`);
    const digest = createHash('sha256').update(await readFile(exe)).digest('hex');
    const sels = values(await new UnixWorkloadAttestor({ discoverWorkloadPath: true }).attest(callerOf(pid)));
    expect(sels).toContain(`path:${exe}`);
    expect(sels).toContain(`sha256:${digest}`);
  });

  it('refuses to hash a binary over the size limit, and never hashes with a negative limit', async () => {
    const pid = await startSleep();
    const err = await new UnixWorkloadAttestor({ discoverWorkloadPath: true, workloadSizeLimit: 1024 }).attest(callerOf(pid)).catch((e: unknown) => e);
    expect(isMayflyError(err, 'ERR_ATTESTATION_FAILED')).toBe(true);
    expect(String((err as Error).message)).toMatch(/hashing limit/);
    const sels = values(await new UnixWorkloadAttestor({ discoverWorkloadPath: true, workloadSizeLimit: -1 }).attest(callerOf(pid)));
    expect(sels.some((s) => s.startsWith('path:'))).toBe(true);
    expect(sels.some((s) => s.startsWith('sha256:'))).toBe(false);
  });

  it('refuses facts that contradict the connect-time record (exec after connect) instead of reporting them', async () => {
    const pid = await startSleep();
    const a = new UnixWorkloadAttestor({ discoverWorkloadPath: true });
    // The process now runs as a uid other than the one SO_PEERCRED recorded (a setuid exec).
    const uidErr = await a.attest(callerOf(pid, { uid: process.geteuid!() + 1 })).catch((e: unknown) => e);
    expect(isMayflyError(uidErr, 'ERR_CALLER_CHANGED')).toBe(true);
    expect(String((uidErr as Error).message)).toMatch(/connected as uid \d+ gid \d+ and now runs as uid/);
    const gidErr = await a.attest(callerOf(pid, { gid: process.getegid!() + 1 })).catch((e: unknown) => e);
    expect(isMayflyError(gidErr, 'ERR_CALLER_CHANGED')).toBe(true);
    // It runs another file than the one seen at accept: no unix:path / unix:sha256 for it.
    const exeErr = await a.attest(callerOf(pid, { executable: '1:2' })).catch((e: unknown) => e);
    expect(isMayflyError(exeErr, 'ERR_CALLER_CHANGED')).toBe(true);
    expect(String((exeErr as Error).message)).toMatch(/executed another file/);
    // Path discovery needs the accept-time executable; without it, attestation fails.
    const { executable: _unused, ...noExe } = callerOf(pid);
    const noExeErr = await a.attest(noExe).catch((e: unknown) => e);
    expect(isMayflyError(noExeErr, 'ERR_ATTESTATION_FAILED')).toBe(true);
    // Without path discovery the executable does not matter, the uid still does.
    expect(values(await new UnixWorkloadAttestor().attest(callerOf(pid, { executable: '1:2' })))).toContain(`uid:${process.geteuid!()}`);
  });

  describe('with a recorded /proc and /etc', () => {
    let root: string;
    const roots: string[] = [];
    const setup = async (status: string): Promise<UnixWorkloadAttestor> => {
      root = await mkdtemp(join(tmpdir(), 'mayfly-unix-'));
      roots.push(root);
      await mkdir(join(root, 'proc/4242'), { recursive: true });
      await mkdir(join(root, 'etc'));
      await writeFile(join(root, 'proc/4242/status'), status);
      await writeFile(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\nweb2:x:1000:1000::/:/bin/sh\n');
      await writeFile(join(root, 'etc/group'), 'root:x:0:\nweb:x:1000:\ndocker:x:998:web\n');
      return new UnixWorkloadAttestor({ procRoot: join(root, 'proc'), etcRoot: join(root, 'etc') });
    };
    afterAll(async () => {
      for (const r of roots) await rm(r, { recursive: true, force: true });
    });

    it('uses the effective ids, not the real ones, and the first passwd name', async () => {
      const a = await setup('Name:\tweb\nUid:\t0\t1000\t1000\t1000\nGid:\t0\t1000\t1000\t1000\nGroups:\t998 4 \n');
      expect(values(await a.attest(callerOf(4242, { procRoot: join(root, 'proc') })))).toEqual([
        'uid:1000',
        'user:web',
        'gid:1000',
        'group:web',
        'supplementary_gid:998',
        'supplementary_group:docker',
        'supplementary_gid:4',
      ]);
    });

    it('sees every change to /etc/passwd and /etc/group, same size or replaced by rename', async () => {
      const a = await setup('Name:\tweb\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t\n');
      expect(values(await a.attest(callerOf(4242, { procRoot: join(root, 'proc') })))).toEqual(['uid:1000', 'user:web', 'gid:1000', 'group:web']);
      // Same length, edited in place: the cached parse must not be served.
      await writeFile(join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/home/web:/bin/sh\nweb2:x:1000:1000::/:/bin/sh\n');
      expect(values(await a.attest(callerOf(4242, { procRoot: join(root, 'proc') })))).toContain('user:bob');
      // Replaced by rename (new inode), as useradd does.
      await writeFile(join(root, 'etc/group.new'), 'root:x:0:\nstaff:x:1000:\n');
      await rename(join(root, 'etc/group.new'), join(root, 'etc/group'));
      expect(values(await a.attest(callerOf(4242, { procRoot: join(root, 'proc') })))).toEqual(['uid:1000', 'user:bob', 'gid:1000', 'group:staff']);
      // Removed: no name selectors any more.
      await rm(join(root, 'etc/passwd'));
      expect(values(await a.attest(callerOf(4242, { procRoot: join(root, 'proc') })))).toEqual(['uid:1000', 'gid:1000', 'group:staff']);
    });

    it('fails attestation on a status file it cannot make sense of', async () => {
      const a = await setup('Name:\tweb\nUid:\tzero\n');
      const err = await a.attest(callerOf(4242, { procRoot: join(root, 'proc') })).catch((e: unknown) => e);
      expect(isMayflyError(err, 'ERR_ATTESTATION_FAILED')).toBe(true);
    });
  });
});

describe('attestWorkload', () => {
  it('merges the selectors of several attestors without duplicates', async () => {
    const fixed = (name: string, values: string[]): WorkloadAttestor => ({
      name,
      attest: async () => values.map((value) => ({ type: name, value })),
    });
    const merged = await attestWorkload([fixed('unix', ['uid:1', 'gid:2']), fixed('unix', ['gid:2']), fixed('k8s', ['ns:a'])], callerOf(1, { uid: 0, gid: 0 }));
    expect(merged).toEqual([
      { type: 'unix', value: 'uid:1' },
      { type: 'unix', value: 'gid:2' },
      { type: 'k8s', value: 'ns:a' },
    ]);
  });

  it('fails when any attestor fails', async () => {
    const bad: WorkloadAttestor = { name: 'x', attest: () => Promise.reject(new Error('boom')) };
    await expect(attestWorkload([new UnixWorkloadAttestor(), bad], callerOf(process.pid))).rejects.toThrow('boom');
  });
});
