/**
 * @module wire/workload/socket-paths
 *
 * Where Mayfly's sockets live unless configured otherwise: the one function every
 * default names (agent, server, CLI clients, the SDK, docs). In the Workload API's wire because both
 * ends of the Workload API (the agent that binds it, the SDK that finds it) need it; the server's admin
 * socket follows the same rule and sits beside it.
 *
 * Threat: a default under a directory every local user can write to (`/tmp/mayfly-...`),
 * which the first user to create it owns (`src/securefs/trusted-dir.ts` refuses such a directory;
 * these defaults keep a normal start from ever meeting one):
 * - as root: `/run/mayfly/agent/public/api.sock` and `/run/mayfly/server/private/api.sock`
 *   (`/run` is root's, 0755);
 * - otherwise: `$XDG_RUNTIME_DIR/mayfly/...` (the user's own 0700 runtime directory, made
 *   by systemd-logind) when XDG_RUNTIME_DIR is set to an absolute path;
 * - otherwise (a non-root process with no runtime directory, e.g. in CI or a container):
 *   `<os.tmpdir()>/mayfly-<uid>/...`. Another user may create that directory first, but
 *   then the start is refused with a message naming it (denial of service, never a
 *   hijacked socket); set `socket_path` (or XDG_RUNTIME_DIR) to avoid it.
 */
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';

export type SocketRole = 'agent' | 'server';

/** What the default depends on; every field defaults to this process's. */
export interface SocketPathContext {
  uid?: number;
  env?: Readonly<Record<string, string | undefined>>;
  tmpdir?: string;
}

const UNDER_RUNTIME_DIR: Record<SocketRole, string> = {
  agent: join('agent', 'public', 'api.sock'),
  server: join('server', 'private', 'api.sock'),
};

/** Root's runtime directory for Mayfly. */
export const ROOT_RUNTIME_DIR = '/run/mayfly';

/** The fix named when a socket directory is refused. */
export const SOCKET_DIR_FIX = 'remove it or choose another socket path with socket_path (-socketPath)';

function roleOf(role: SocketRole): string {
  const sub = UNDER_RUNTIME_DIR[role];
  if (sub === undefined) throw new TypeError(`socket role must be 'agent' or 'server', not ${JSON.stringify(role)}`);
  return sub;
}

/** The directory Mayfly's sockets go under for this context (see the module doc). */
export function runtimeDir(ctx: SocketPathContext = {}): string {
  const uid = ctx.uid ?? process.getuid?.();
  if (uid === 0) return ROOT_RUNTIME_DIR;
  const xdg = (ctx.env ?? process.env).XDG_RUNTIME_DIR;
  // The XDG spec: a relative path in the variable is invalid and is ignored.
  if (xdg !== undefined && xdg !== '' && isAbsolute(xdg)) return join(xdg, 'mayfly');
  return join(ctx.tmpdir ?? tmpdir(), `mayfly-${uid ?? 'user'}`);
}

/** Where a Mayfly process serves `role`'s socket by default: the agent's Workload API or the server's admin API. */
export function defaultSocketPath(role: SocketRole, ctx: SocketPathContext = {}): string {
  return join(runtimeDir(ctx), roleOf(role));
}

/**
 * Where a client looks for `role`'s socket when none is named: its own default, then
 * root's (a workload user reaching the node's root agent). Callers use the first that exists.
 */
export function defaultSocketCandidates(role: SocketRole, ctx: SocketPathContext = {}): string[] {
  const own = defaultSocketPath(role, ctx);
  const root = join(ROOT_RUNTIME_DIR, roleOf(role));
  return own === root ? [own] : [own, root];
}
