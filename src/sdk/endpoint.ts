/**
 * @module sdk/endpoint
 *
 * Where the Workload API is: an explicit address option, else `SPIFFE_ENDPOINT_SOCKET`,
 * as the SPIFFE Workload Endpoint standard spells it (`unix:///abs/path`, `unix:/abs/path`
 * or `tcp://IP:port`), turned into a grpc-js target; else Mayfly's default agent socket
 * (`wire/workload/socket-paths`: this user's default, then root's `/run/mayfly/agent/
 * public/api.sock`, the first that exists).
 *
 * Threat: connecting somewhere other than the local agent. A relative socket path resolves
 * against whatever directory the workload happens to run in, and a host name for `tcp`
 * sends the request (and trusts the answer) through DNS; both are rejected rather than
 * guessed at, as go-spiffe does.
 */
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { defaultSocketCandidates } from '../wire/workload/socket-paths.js';
import { EndpointError } from './errors.js';

/** The environment variable the SPIFFE standard names for the Workload API address. */
export const ENDPOINT_ENV = 'SPIFFE_ENDPOINT_SOCKET';

export interface ResolvedEndpoint {
  /** The address as given (`unix:///...`, `tcp://...`). */
  address: string;
  /** The grpc-js channel target (`unix:///...`, `ipv4:1.2.3.4:80`, `ipv6:[::1]:80`). */
  target: string;
  kind: 'unix' | 'tcp';
}

function bad(addr: string, why: string): never {
  throw new EndpointError(`invalid Workload API address ${JSON.stringify(addr)}: ${why}`);
}

/** Parses one address in the standard's URI form. */
export function parseEndpointAddress(addr: string): ResolvedEndpoint {
  if (typeof addr !== 'string') throw new TypeError('Workload API address must be a string');
  if (addr === '') bad(addr, 'it is empty; use unix:///absolute/path or tcp://IP:port');
  const colon = addr.indexOf(':');
  const scheme = colon > 0 && /^[a-zA-Z][a-zA-Z0-9+.-]*$/.test(addr.slice(0, colon)) ? addr.slice(0, colon) : '';
  if (scheme === '') bad(addr, 'it has no scheme; use unix:///absolute/path or tcp://IP:port');
  const rest = addr.slice(colon + 1);
  if (/[?#]/.test(rest)) bad(addr, 'a query or fragment is not allowed');
  if (scheme === 'unix') {
    let path: string;
    if (rest.startsWith('//')) {
      const afterAuthority = rest.slice(2);
      const slash = afterAuthority.indexOf('/');
      const authority = slash === -1 ? afterAuthority : afterAuthority.slice(0, slash);
      if (authority !== '') bad(addr, 'a unix socket address must not name a host (use unix:///absolute/path)');
      path = slash === -1 ? '' : afterAuthority.slice(slash);
    } else {
      path = rest;
    }
    if (path === '') bad(addr, 'the unix socket path is missing');
    if (!path.startsWith('/')) bad(addr, 'the unix socket path must be absolute');
    if (path.includes('\0')) bad(addr, 'the unix socket path holds a NUL byte');
    return { address: addr, target: `unix://${path}`, kind: 'unix' };
  }
  if (scheme === 'tcp') {
    if (!rest.startsWith('//')) bad(addr, 'use tcp://IP:port');
    const hostport = rest.slice(2);
    if (hostport.includes('@')) bad(addr, 'user info is not allowed');
    if (hostport.includes('/')) bad(addr, 'a tcp address must not have a path');
    let host: string;
    let port: string;
    if (hostport.startsWith('[')) {
      const close = hostport.indexOf(']');
      if (close === -1) bad(addr, 'unterminated IPv6 address');
      host = hostport.slice(1, close);
      const after = hostport.slice(close + 1);
      if (!after.startsWith(':')) bad(addr, 'the port is missing');
      port = after.slice(1);
    } else {
      const c = hostport.lastIndexOf(':');
      if (c === -1) bad(addr, 'the port is missing');
      host = hostport.slice(0, c);
      port = hostport.slice(c + 1);
    }
    if (host === '') bad(addr, 'the host is missing');
    const family = isIP(host);
    if (family === 0 || (family === 6 && !hostport.startsWith('['))) bad(addr, `host ${JSON.stringify(host)} must be an IP address (host names are not allowed)`);
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) bad(addr, `port ${JSON.stringify(port)} must be a number from 1 to 65535`);
    const target = family === 4 ? `ipv4:${host}:${Number(port)}` : `ipv6:[${host}]:${Number(port)}`;
    return { address: addr, target, kind: 'tcp' };
  }
  return bad(addr, `scheme ${JSON.stringify(scheme)} is not supported; use unix or tcp`);
}

export interface EndpointOptions {
  /** Address in URI form; wins over the environment. */
  address?: string;
  /** A plain absolute socket path (SPIRE's `-socketPath`); wins over the environment. */
  socketPath?: string;
  /** Environment to read `SPIFFE_ENDPOINT_SOCKET` from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** The endpoint from `address`, `socketPath`, or `SPIFFE_ENDPOINT_SOCKET`, in that order. */
export function resolveEndpoint(options: EndpointOptions = {}): ResolvedEndpoint {
  if (options.address !== undefined && options.socketPath !== undefined) {
    throw new TypeError('give either address or socketPath, not both');
  }
  if (options.address !== undefined) return parseEndpointAddress(options.address);
  if (options.socketPath !== undefined) {
    const p = options.socketPath;
    if (p === '') throw new EndpointError('the socket path is empty');
    if (p.includes('://')) return parseEndpointAddress(p);
    if (!p.startsWith('/')) throw new EndpointError(`socket path ${JSON.stringify(p)} must be absolute`);
    return { address: `unix://${p}`, target: `unix://${p}`, kind: 'unix' };
  }
  const env = options.env ?? process.env;
  const fromEnv = env[ENDPOINT_ENV];
  if (fromEnv === undefined || fromEnv === '') {
    const candidates = defaultSocketCandidates('agent', { env });
    const path = candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
    return { address: `unix://${path}`, target: `unix://${path}`, kind: 'unix' };
  }
  return parseEndpointAddress(fromEnv);
}
