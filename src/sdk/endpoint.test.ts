import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defaultSocketCandidates } from '../wire/workload/socket-paths.js';
import { isMayflyError } from '../spiffe/errors.js';
import { parseEndpointAddress, resolveEndpoint } from './endpoint.js';

describe('parseEndpointAddress', () => {
  it.each([
    ['unix:///run/spire/agent.sock', 'unix:///run/spire/agent.sock', 'unix'],
    ['unix:/run/spire/agent.sock', 'unix:///run/spire/agent.sock', 'unix'],
    ['tcp://127.0.0.1:8081', 'ipv4:127.0.0.1:8081', 'tcp'],
    ['tcp://[::1]:8081', 'ipv6:[::1]:8081', 'tcp'],
  ])('accepts %s', (addr, target, kind) => {
    expect(parseEndpointAddress(addr)).toEqual({ address: addr, target, kind });
  });

  it.each([
    ['', /it is empty/],
    ['/run/agent.sock', /no scheme/],
    ['run/agent.sock', /no scheme/],
    ['unix://run/agent.sock', /must not name a host/],
    ['unix:run/agent.sock', /must be absolute/],
    ['unix://', /path is missing/],
    ['unix:///a.sock?x=1', /query or fragment/],
    ['unix:///a.sock#f', /query or fragment/],
    ['tcp://localhost:8081', /must be an IP address/],
    ['tcp://agent.example.org:8081', /must be an IP address/],
    ['tcp://127.0.0.1', /port is missing/],
    ['tcp://127.0.0.1:0', /port "0"/],
    ['tcp://127.0.0.1:99999', /port "99999"/],
    ['tcp://127.0.0.1:80/path', /must not have a path/],
    ['tcp://user@127.0.0.1:80', /user info/],
    ['tcp:127.0.0.1:80', /use tcp:\/\/IP:port/],
    ['http://127.0.0.1:80', /scheme "http" is not supported/],
  ])('rejects %j', (addr, why) => {
    let err: unknown;
    try {
      parseEndpointAddress(addr);
    } catch (e) {
      err = e;
    }
    expect(isMayflyError(err, 'ERR_WORKLOAD_API_ENDPOINT')).toBe(true);
    expect((err as Error).message).toMatch(why);
  });
});

describe('resolveEndpoint', () => {
  it('prefers the option, then SPIFFE_ENDPOINT_SOCKET', () => {
    const env = { SPIFFE_ENDPOINT_SOCKET: 'unix:///from/env.sock' };
    expect(resolveEndpoint({ env }).target).toBe('unix:///from/env.sock');
    expect(resolveEndpoint({ env, address: 'tcp://10.0.0.1:1' }).target).toBe('ipv4:10.0.0.1:1');
    expect(resolveEndpoint({ env, socketPath: '/plain/path.sock' }).target).toBe('unix:///plain/path.sock');
  });

  it('without SPIFFE_ENDPOINT_SOCKET, uses Mayfly\'s default agent socket (the first that exists, else this user\'s)', () => {
    const candidates = defaultSocketCandidates('agent', { env: {} });
    const expected = candidates.find((p) => existsSync(p)) ?? candidates[0];
    expect(resolveEndpoint({ env: {} })).toEqual({ address: `unix://${expected}`, target: `unix://${expected}`, kind: 'unix' });
    expect(resolveEndpoint({ env: { SPIFFE_ENDPOINT_SOCKET: '' } }).address).toBe(`unix://${expected}`);
    if (process.getuid?.() === 0) expect(expected).toBe('/run/mayfly/agent/public/api.sock');
    // A non-root user with a runtime directory looks there first, then at root's agent.
    expect(defaultSocketCandidates('agent', { uid: 1000, env: { XDG_RUNTIME_DIR: '/run/user/1000' } })).toEqual([
      '/run/user/1000/mayfly/agent/public/api.sock',
      '/run/mayfly/agent/public/api.sock',
    ]);
  });

  it('rejects a relative socket path and a bad address', () => {
    expect(() => resolveEndpoint({ socketPath: 'relative.sock' })).toThrow(/must be absolute/);
    expect(() => resolveEndpoint({ env: { SPIFFE_ENDPOINT_SOCKET: 'tcp://localhost:1' } })).toThrow(/must be an IP address/);
  });
});
