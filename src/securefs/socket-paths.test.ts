import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isMayflyError } from '../spiffe/errors.js';
import { locateDefaultSocket } from './locate-socket.js';
import { defaultSocketCandidates, defaultSocketPath } from '../wire/workload/socket-paths.js';
import { tempDirs } from './testing.js';

const dirs = tempDirs();
afterEach(() => dirs.cleanup());

describe('defaultSocketPath: the one place defaults are named', () => {
  it('as root: /run/mayfly/{agent/public,server/private}/api.sock, whatever the environment', () => {
    const env = { XDG_RUNTIME_DIR: '/run/user/0' };
    expect(defaultSocketPath('agent', { uid: 0, env })).toBe('/run/mayfly/agent/public/api.sock');
    expect(defaultSocketPath('server', { uid: 0, env })).toBe('/run/mayfly/server/private/api.sock');
    expect(defaultSocketCandidates('agent', { uid: 0 })).toEqual(['/run/mayfly/agent/public/api.sock']);
  });

  it('otherwise under $XDG_RUNTIME_DIR/mayfly; without one (or with a relative one) under <tmpdir>/mayfly-<uid>', () => {
    expect(defaultSocketPath('agent', { uid: 1000, env: { XDG_RUNTIME_DIR: '/run/user/1000' } })).toBe('/run/user/1000/mayfly/agent/public/api.sock');
    expect(defaultSocketPath('server', { uid: 1000, env: { XDG_RUNTIME_DIR: '/run/user/1000' } })).toBe('/run/user/1000/mayfly/server/private/api.sock');
    expect(defaultSocketPath('agent', { uid: 1000, env: {}, tmpdir: '/tmp' })).toBe('/tmp/mayfly-1000/agent/public/api.sock');
    expect(defaultSocketPath('agent', { uid: 1000, env: { XDG_RUNTIME_DIR: 'relative/dir' }, tmpdir: '/tmp' })).toBe('/tmp/mayfly-1000/agent/public/api.sock');
    // A client as a non-root user also looks where a root agent serves.
    expect(defaultSocketCandidates('agent', { uid: 1000, env: { XDG_RUNTIME_DIR: '/run/user/1000' } })).toEqual([
      '/run/user/1000/mayfly/agent/public/api.sock',
      '/run/mayfly/agent/public/api.sock',
    ]);
  });

  it('never names /tmp/mayfly-agent or /tmp/mayfly-server', () => {
    for (const uid of [0, 1000]) for (const role of ['agent', 'server'] as const) expect(defaultSocketPath(role, { uid, env: {} })).not.toMatch(/\/tmp\/mayfly-(agent|server)\//);
  });
});

describe('locateDefaultSocket (clients)', () => {
  it('uses the first candidate that exists, and refuses one inside a directory others can write to', () => {
    const xdg = dirs.make();
    const ctx = { uid: 1000, env: { XDG_RUNTIME_DIR: xdg } };
    const path = defaultSocketPath('agent', ctx);
    expect(locateDefaultSocket('agent', ctx)).toMatchObject({ path, found: false });
    mkdirSync(join(xdg, 'mayfly', 'agent', 'public'), { recursive: true });
    writeFileSync(path, ''); // stands in for the socket: only its existence is looked at
    expect(locateDefaultSocket('agent', ctx)).toMatchObject({ path, found: true });
    chmodSync(join(xdg, 'mayfly'), 0o777);
    let err: unknown;
    try {
      locateDefaultSocket('agent', ctx);
    } catch (e) {
      err = e;
    }
    expect(isMayflyError(err, 'ERR_PATH_UNTRUSTED')).toBe(true);
    expect((err as Error).message).toContain(`directory ${join(xdg, 'mayfly')} has mode 0777`);
  });
});
