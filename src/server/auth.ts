/**
 * @module server/auth
 *
 * Who is calling, and may they call this RPC.
 *
 * Threats it stops:
 * - Trusting the TLS layer alone: the TCP endpoint accepts any client certificate (an
 *   attesting agent has none yet, so the handshake cannot require one), so every presented
 *   certificate is verified here as an X509-SVID of our trust domain against the current
 *   served bundle (every server's authorities when servers share a datastore, so an agent
 *   attested through one is accepted by all), with the server's clock (an expired SVID is
 *   UNAUTHENTICATED).
 * - Stale agent credentials: an agent SVID counts only while the agent is recorded,
 *   not banned, and the SVID's serial is the one recorded at its last attestation or
 *   renewal. An evicted agent is UNAUTHENTICATED (it must attest again); a banned one,
 *   or one presenting a superseded SVID, is PERMISSION_DENIED.
 * - Privilege by path: admin rights on TCP come only from an SVID whose SPIFFE ID is
 *   registered in an entry with `admin: true`; any other valid SVID gets PERMISSION_DENIED
 *   on admin RPCs. The admin Unix socket's file mode is its authorisation; agent-only RPCs
 *   are refused there, since no agent identity stands behind a local socket.
 * - A scoped registrar (server.conf `registrars`, server/registrar-scope) using an admin RPC
 *   that its scope does not bound: an admin SVID with a scope may call only the entry and
 *   agent RPCs, which check the scope item by item; every other admin RPC is PERMISSION_DENIED.
 */
import type { AttestedAgent } from '../datastore/datastore.js';
import { isMayflyError } from '../spiffe/errors.js';
import type { SpiffeId } from '../spiffe/id.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { servedBundle, type ApiContext } from './api-context.js';
import { describeScope, SCOPED_REGISTRAR_METHODS, type RegistrarScope } from './registrar-scope.js';
import { agentBanned, agentEvicted, agentSvidSuperseded, denied, unauthenticated } from './status.js';

export type Transport = 'admin-socket' | 'tcp';

/**
 * - `public`: anyone (Health, the server's own bundle);
 * - `attest`: anyone, identity unused (AttestAgent);
 * - `admin`: the admin socket, or an admin SVID over TCP;
 * - `agent`: a current agent SVID over TCP.
 */
export type Policy = 'public' | 'attest' | 'admin' | 'agent';

export type Caller =
  | { readonly kind: 'local-admin' }
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'agent'; readonly agentId: SpiffeId; readonly agent: AttestedAgent; readonly serial: string }
  /** `scope`: the registrar scope server.conf holds this admin to (absent: an unscoped admin). */
  | { readonly kind: 'admin'; readonly spiffeId: SpiffeId; readonly scope?: RegistrarScope }
  | { readonly kind: 'workload'; readonly spiffeId: SpiffeId };

const AGENT_PATH_PREFIX = '/spire/agent/';

export function isAgentId(id: SpiffeId): boolean {
  return id.path.startsWith(AGENT_PATH_PREFIX);
}

/** Checks an agent record against the serial of the SVID it presented. */
export function checkAgentStanding(agent: AttestedAgent | undefined, agentId: string, serial: string): AttestedAgent {
  if (agent === undefined) throw agentEvicted(agentId);
  if (agent.banned) throw agentBanned(agentId);
  if (agent.serialNumber === '' || agent.serialNumber.toLowerCase() !== serial.toLowerCase()) {
    throw agentSvidSuperseded(agentId);
  }
  return agent;
}

/** Identifies the caller of `call` arriving over `transport`. */
export async function authenticate(ctx: ApiContext, transport: Transport, call: { getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } | null }): Promise<Caller> {
  if (transport === 'admin-socket') return { kind: 'local-admin' };
  const peer = call.getAuthContext()?.sslPeerCertificate;
  const raw = peer?.raw;
  if (!(raw instanceof Buffer) || raw.length === 0) return { kind: 'anonymous' };
  let spiffeId: SpiffeId;
  try {
    const verified = verifyX509Svid([raw, ...ctx.intermediates()], { trustDomain: ctx.trustDomain, x509Authorities: servedBundle(ctx).x509Authorities }, { now: ctx.now() });
    spiffeId = verified.spiffeId;
  } catch (err) {
    const why = isMayflyError(err) ? err.message : 'it cannot be verified';
    throw unauthenticated(`client certificate is not a valid X509-SVID of ${ctx.trustDomain.name}: ${why}`);
  }
  if (isAgentId(spiffeId)) {
    const serial = parseCertificate(raw).serialHex;
    const agent = checkAgentStanding(await ctx.ds.getAgent(spiffeId.toString()), spiffeId.toString(), serial);
    return { kind: 'agent', agentId: spiffeId, agent, serial };
  }
  if (await isAdminId(ctx, spiffeId)) {
    const scope = ctx.registrars?.get(spiffeId.toString());
    return scope === undefined ? { kind: 'admin', spiffeId } : { kind: 'admin', spiffeId, scope };
  }
  return { kind: 'workload', spiffeId };
}

async function isAdminId(ctx: ApiContext, id: SpiffeId): Promise<boolean> {
  return hasAdminEntry(ctx.ds, id, Math.floor(ctx.now().getTime() / 1000));
}

/** Whether `id` is registered in an unexpired entry with `admin: true` at `now` (unix seconds): what makes an SVID an admin's. */
export async function hasAdminEntry(ds: Pick<ApiContext['ds'], 'listEntries'>, id: SpiffeId, now: number): Promise<boolean> {
  let pageToken: string | undefined;
  do {
    const page = await ds.listEntries({ bySpiffeId: id.toString(), pageSize: 1000, pageToken });
    if (page.items.some((e) => e.admin && (e.expiresAt === 0 || e.expiresAt > now))) return true;
    pageToken = page.nextPageToken === '' ? undefined : page.nextPageToken;
  } while (pageToken !== undefined);
  return false;
}

/** Throws PERMISSION_DENIED / UNAUTHENTICATED unless `caller` may call an RPC with `policy`. */
export function authorize(caller: Caller, policy: Policy, method: string): void {
  switch (policy) {
    case 'public':
    case 'attest':
      return;
    case 'admin':
      if (caller.kind === 'admin' && caller.scope !== undefined && !SCOPED_REGISTRAR_METHODS.has(method)) {
        throw denied(`${method} is not open to scoped registrars (only entry and agent calls, each checked against the scope); ${describeScope(caller.scope)}`);
      }
      if (caller.kind === 'local-admin' || caller.kind === 'admin') return;
      if (caller.kind === 'anonymous') throw unauthenticated(`${method} needs an admin X509-SVID or the admin socket`);
      throw denied(`${method} is an admin RPC; the caller is not an admin`);
    case 'agent':
      if (caller.kind === 'agent') return;
      if (caller.kind === 'anonymous') throw unauthenticated(`${method} needs a current agent X509-SVID`);
      throw denied(`${method} is for attested agents only`);
  }
}
