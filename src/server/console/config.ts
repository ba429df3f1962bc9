/**
 * @module server/console/config
 *
 * `server { console { … } }`: the read-only web console (server/console/listener), off
 * unless the block is there (and not `enabled = false`). Keys: `bind_address` (default
 * 127.0.0.1), `bind_port` (default 8443), and the bearer token as exactly one of
 * `token_file` (a file holding the token, at least 32 characters, not readable by group or
 * others) or `token_sha256` (64 hex: the SHA-256 of the token); neither is also fine: then
 * only admin X509-SVIDs (mTLS) get in. `session_ttl` (default 8h) bounds a browser login.
 *
 * Threat: a console reachable by more people than meant, or with a guessable secret. The
 * token itself never sits in server.conf (a path or a hash does), a short or world-readable
 * token file refuses the start, and nothing falls back to anonymous access.
 */
import { readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { block, bool, checkKeys, duration, port, str } from '../../config/accessors.js';
import type { HclObject } from '../../config/hcl.js';
import type { Problems } from '../../config/problems.js';

export interface ConsoleSettings {
  bindAddress: string;
  bindPort: number;
  /** SHA-256 of the bearer token; absent: only admin mTLS. */
  tokenSha256?: Buffer;
  /** Where the token came from (for the start log line; never the token). */
  tokenSource?: string;
  sessionTtlSeconds: number;
}

export const DEFAULT_CONSOLE_ADDRESS = '127.0.0.1';
export const DEFAULT_CONSOLE_PORT = 8443;
export const MIN_TOKEN_LENGTH = 32;
const DEFAULT_SESSION_TTL = 8 * 3600;

/** The token file's token (trailing newline trimmed), or a problem. */
export function readTokenFile(file: string, where: string, p: Problems): string | undefined {
  let text: string;
  try {
    const st = statSync(file);
    if ((st.mode & 0o077) !== 0) {
      p.add(`${where}: ${file} is readable or writable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
      return undefined;
    }
    text = readFileSync(file, 'utf8');
  } catch (err) {
    p.add(`${where}: cannot read ${file}: ${(err as Error).message}`);
    return undefined;
  }
  const token = text.replace(/\r?\n$/, '');
  if (token.length < MIN_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token)) {
    p.add(`${where}: the token in ${file} must be at least ${MIN_TOKEN_LENGTH} printable ASCII characters, no spaces`);
    return undefined;
  }
  return token;
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** `server.console`, when configured and enabled. */
export function readConsoleBlock(srv: HclObject, p: Problems): ConsoleSettings | undefined {
  const c = block(srv, 'console', 'server', p);
  if (c === undefined) return undefined;
  const w = 'server.console';
  checkKeys(c, ['enabled', 'bind_address', 'bind_port', 'token_file', 'token_sha256', 'session_ttl'], w, p);
  if (bool(c, 'enabled', w, p) === false) return undefined;
  const bindAddress = str(c, 'bind_address', w, p, { nonEmpty: true }) ?? DEFAULT_CONSOLE_ADDRESS;
  const bindPort = port(c.bind_port, `${w}.bind_port`, p) ?? DEFAULT_CONSOLE_PORT;
  const file = str(c, 'token_file', w, p, { nonEmpty: true });
  const hex = str(c, 'token_sha256', w, p, { nonEmpty: true });
  const out: ConsoleSettings = { bindAddress, bindPort, sessionTtlSeconds: duration(c, 'session_ttl', w, p) ?? DEFAULT_SESSION_TTL };
  if (file !== undefined && hex !== undefined) {
    p.add(`${w}: set token_file or token_sha256, not both`);
  } else if (file !== undefined) {
    const token = readTokenFile(file, `${w}.token_file`, p);
    if (token !== undefined) {
      out.tokenSha256 = sha256(token);
      out.tokenSource = file;
    }
  } else if (hex !== undefined) {
    if (!/^[0-9a-fA-F]{64}$/.test(hex)) p.add(`${w}.token_sha256 must be 64 hex digits (the SHA-256 of the token); got ${hex.length} characters`);
    else {
      out.tokenSha256 = Buffer.from(hex, 'hex');
      out.tokenSource = 'token_sha256';
    }
  }
  return out;
}
