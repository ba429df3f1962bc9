/**
 * The Workload API endpoint refuses a socket directory another user could have planted
 * (issue 16, finding 3), with real directories and a real listening socket.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { asRoot, giveToOtherUser, modeOf, OTHER_UID, tempDirs } from '../securefs/testing.js';
import { isMayflyError } from '../spiffe/errors.js';
import { WorkloadApiEndpoint } from './endpoint.js';

const dirs = tempDirs('mayfly-wl-dir-');
const endpoints: WorkloadApiEndpoint[] = [];
afterEach(async () => {
  for (const e of endpoints.splice(0)) await e.close();
  dirs.cleanup();
});

function endpoint(socketPath: string): WorkloadApiEndpoint {
  const e = new WorkloadApiEndpoint({
    socketPath,
    identities: { attest: async () => [], subscribe: () => () => undefined, fetchJwtSvid: async () => [] },
    validateJwtSvid: async () => {
      throw new Error('unused');
    },
    peerCredentials: {
      read: async () => {
        throw new Error('unused');
      },
      verify: () => ({ ok: true }),
    },
  });
  endpoints.push(e);
  return e;
}

async function refusal(socketPath: string): Promise<Error> {
  const err = await endpoint(socketPath).start().then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (err === undefined) throw new Error(`the endpoint started on ${socketPath}`);
  return err;
}

describe('WorkloadApiEndpoint.start: the socket directory', () => {
  it.skipIf(!asRoot)('is refused when another user created it first (uid 65534), and no socket is bound there', async () => {
    const planted = join(dirs.make(), 'mayfly-agent', 'public');
    mkdirSync(planted, { recursive: true, mode: 0o755 });
    giveToOtherUser(planted);
    const err = await refusal(join(planted, 'api.sock'));
    expect(isMayflyError(err, 'ERR_PATH_UNTRUSTED')).toBe(true);
    expect(err.message).toBe(`directory ${planted} is owned by uid ${OTHER_UID} (expected 0 (root)); remove it or choose another socket path with socket_path (-socketPath)`);
    expect(readdirSync(planted)).toEqual([]);
  });

  it('is refused when it is 0777 without the sticky bit, or such a directory is above it', async () => {
    const base = dirs.make();
    const open = join(base, 'public');
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect((await refusal(join(open, 'api.sock'))).message).toContain(`directory ${open} has mode 0777`);
    expect(readdirSync(open)).toEqual([]);
    expect((await refusal(join(open, 'agent', 'api.sock'))).message).toContain(`directory ${open} has mode 0777`);
    expect(existsSync(join(open, 'agent'))).toBe(false);
  });

  it('is created when missing, 0755 all the way whatever the umask (workloads must reach the socket); a sticky 1777 parent is accepted', async () => {
    const base = dirs.make();
    const sticky = join(base, 'shared');
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    const socketPath = join(sticky, 'mayfly', 'agent', 'public', 'api.sock');
    const old = process.umask(0o077);
    try {
      await endpoint(socketPath).start();
    } finally {
      process.umask(old);
    }
    expect(lstatSync(socketPath).isSocket()).toBe(true);
    expect(modeOf(join(sticky, 'mayfly'))).toBe(0o755);
    expect(modeOf(join(sticky, 'mayfly', 'agent', 'public'))).toBe(0o755);
    // The mkdtemp directory (0700, ours) under /tmp (1777) is fine as it is.
    await endpoint(join(base, 'api.sock')).start();
    expect(lstatSync(join(base, 'api.sock')).isSocket()).toBe(true);
  });
});
