/**
 * @module server/api/agentsync
 *
 * The `AgentSync` service: `SubscribeAuthorizedEntries` streams, to each agent, the full
 * set of entries it is authorised for, the server's bundle and the federated bundles
 * those entries need: once at once, then again whenever that content changes. Changes
 * arrive as notices on the change hub (entry, bundle, agent writes) and from the CA
 * (rotation, and prepare / activate / taint / revoke). The first notice after a quiet spell
 * is acted on at once (in the next turn of the event loop, so notices raised together make
 * one recomputation); notices that follow within `syncCoalesceMs` of a recomputation's start
 * (a burst) are coalesced into one more, at the end of that window. An unchanged result is
 * not resent. This is how changes reach agents without polling, and without a fixed delay.
 * Each update names the tainted authorities (X.509 by SKI hex, JWT by kid), so agents
 * re-issue what those signed as soon as an operator taints one, long before revocation.
 *
 * Threat: an agent that keeps receiving after it lost its standing. Every recomputation
 * first re-reads the agent record: a banned agent's stream ends with PERMISSION_DENIED,
 * an evicted agent's with UNAUTHENTICATED. A stream belongs to the X509-SVID it was opened
 * with: once the record names another serial (renewal, re-attestation) it ends with
 * PERMISSION_DENIED, and once that SVID's NotAfter has passed on the server's clock
 * (checked at each recomputation and again just before each push; no timer) with
 * UNAUTHENTICATED. The agent subscribes again with its current SVID. An agent may hold
 * at most `limits.maxSyncStreamsPerAgent` streams (RESOURCE_EXHAUSTED beyond), since each
 * one recomputes on every change.
 */
import { createHash } from 'node:crypto';
import { status as GrpcStatus, type ServerWritableStream, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { TrustDomain } from '../../spiffe/id.js';
import type { Bundle } from '../../spiffe/bundle/bundle.js';
import type { Transport } from '../auth.js';
import { checkAgentStanding } from '../auth.js';
import { authorizedEntries } from '../authorized.js';
import { nowSeconds, servedBundle, servedTaints, serverStream, type ApiContext } from '../context.js';
import { bundleToWire, entryToAgentWire, storedBundleToBundle, type WireBundle, type WireEntry } from '../messages.js';
import { agentBanned, agentEvicted, denied, toServiceError, tooLarge, unauthenticated } from '../status.js';

interface AuthorizedEntriesUpdate {
  entries: WireEntry[];
  bundle: WireBundle;
  federated_bundles: WireBundle[];
  sequence: number;
  tainted_x509_authorities: string[];
  tainted_jwt_authorities: string[];
  /** The server's X.509 CRLs, DER (issue 10). */
  x509_crls: Buffer[];
  /** Authorised entries not served, and why (issue 11: lapsed owner certification). */
  withheld_entries: { entry_id: string; spiffe_id: string; reason: string }[];
}

/** Live authorised-entry streams; `closeAll` ends them (server shutdown). */
export class AgentSyncStreams {
  readonly #closers = new Set<() => void>();
  readonly #perAgent = new Map<string, number>();

  /** Registers a stream (of `agentId` when given); the returned function unregisters it once. */
  add(close: () => void, agentId?: string): () => void {
    this.#closers.add(close);
    if (agentId !== undefined) this.#perAgent.set(agentId, this.countFor(agentId) + 1);
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      this.#closers.delete(close);
      if (agentId === undefined) return;
      const n = this.countFor(agentId) - 1;
      if (n > 0) this.#perAgent.set(agentId, n);
      else this.#perAgent.delete(agentId);
    };
  }

  /** Live streams of `agentId`. */
  countFor(agentId: string): number {
    return this.#perAgent.get(agentId) ?? 0;
  }

  closeAll(): void {
    for (const c of [...this.#closers]) c();
  }

  get size(): number {
    return this.#closers.size;
  }
}

function fingerprint(u: Omit<AuthorizedEntriesUpdate, 'sequence'>): string {
  return createHash('sha256')
    .update(JSON.stringify(u, (_k, v: unknown) => (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString('base64') : v)))
    .digest('hex');
}

async function federatedBundles(ctx: ApiContext, names: Set<string>): Promise<WireBundle[]> {
  const out: WireBundle[] = [];
  for (const name of [...names].sort()) {
    // The own trust domain's stored bundle is the merged one sent as `bundle`, never a federated one.
    if (name === ctx.trustDomain.name) continue;
    const stored = await ctx.ds.getBundle(name);
    if (stored === undefined) continue;
    let b: Bundle;
    try {
      b = storedBundleToBundle(stored);
    } catch (err) {
      ctx.logger.warn({ trustDomain: name, err }, 'stored federated bundle does not parse; not sent to agents');
      continue;
    }
    if (b.trustDomain.equals(TrustDomain.parse(name))) out.push(bundleToWire(b));
  }
  return out;
}

export function agentSyncService(ctx: ApiContext, t: Transport, streams: AgentSyncStreams): UntypedServiceImplementation {
  return {
    SubscribeAuthorizedEntries: serverStream<object, AuthorizedEntriesUpdate>(ctx, t, 'SubscribeAuthorizedEntries', 'agent', async (_req, caller, call) => {
      if (caller.kind !== 'agent') throw denied('SubscribeAuthorizedEntries is for attested agents only');
      const agentId = caller.agentId.toString();
      const max = ctx.limits.maxSyncStreamsPerAgent;
      if (streams.countFor(agentId) >= max) {
        throw tooLarge(`agent ${agentId} already holds ${max} authorised-entry streams, the limit; close one before subscribing again`);
      }
      // The record was read with this serial in authenticate, so its certNotAfter is this SVID's NotAfter.
      new Subscription(ctx, agentId, caller.serial, caller.agent.certNotAfter, call, streams).start();
    }),
  };
}

class Subscription {
  #lastKey = '';
  #sequence = 0;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  /** When the last recomputation started (performance.now() ms): bursts are spaced from it. */
  #lastRunAt = -Infinity;
  /** When the last recomputation ended: a slow one is followed by at least half a window of rest. */
  #lastEndAt = -Infinity;
  #running = false;
  #pending = false;
  #closed = false;
  readonly #cleanups: (() => void)[] = [];

  constructor(
    private readonly ctx: ApiContext,
    private readonly agentId: string,
    /** Serial (hex) of the X509-SVID the stream was opened with. */
    private readonly serial: string,
    /** That SVID's NotAfter (Unix seconds). */
    private readonly notAfter: number,
    private readonly call: ServerWritableStream<object, AuthorizedEntriesUpdate>,
    private readonly streams: AgentSyncStreams,
  ) {}

  start(): void {
    const { ctx } = this;
    this.#cleanups.push(
      ctx.hub.subscribe((topic) => {
        if (topic.kind === 'agent' && topic.agentId !== this.agentId) return;
        this.#schedule();
      }),
      ctx.ca.onEvent(() => this.#schedule()),
      this.streams.add(() => this.#finish(), this.agentId),
    );
    const gone = (): void => this.#cleanup();
    this.call.on('cancelled', gone);
    this.call.on('close', gone);
    this.call.on('finish', gone);
    void this.#run();
    // The first push answers the subscription, not a change: the first change after it
    // is still acted on at once.
    this.#lastRunAt = -Infinity;
  }

  /**
   * Leading edge: when no recomputation ran in the last `syncCoalesceMs`, the next turn of
   * the event loop runs one (an entry created on an idle server reaches the agent without a
   * fixed delay). Otherwise one more runs when that window ends (or after the running one),
   * so a burst of notices costs at most one recomputation per window; and never sooner than
   * half a window after the last one ended, so that under a steady stream of changes a
   * recomputation slower than the window (a loaded datastore) cannot run back to back.
   */
  #schedule(): void {
    if (this.#closed || this.#timer !== undefined || this.#immediate !== undefined) return;
    if (this.#running) {
      this.#pending = true;
      return;
    }
    const window = this.ctx.limits.syncCoalesceMs;
    const wait = Math.max(this.#lastRunAt + window, this.#lastEndAt + window / 2) - performance.now();
    if (wait <= 0) {
      this.#immediate = setImmediate(() => {
        this.#immediate = undefined;
        void this.#run();
      });
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#run();
    }, wait);
  }

  async #run(): Promise<void> {
    if (this.#closed) return;
    if (this.#running) {
      this.#pending = true;
      return;
    }
    this.#running = true;
    this.#lastRunAt = performance.now();
    try {
      await this.#computeAndSend();
    } catch (err) {
      this.#finish(err);
    } finally {
      this.#running = false;
      // The first push (lastRunAt reset to -Infinity by the constructor) sets no rest either.
      this.#lastEndAt = this.#lastRunAt === -Infinity ? -Infinity : performance.now();
      if (this.#pending && !this.#closed) {
        this.#pending = false;
        this.#schedule();
      }
    }
  }

  async #computeAndSend(): Promise<void> {
    const { ctx } = this;
    const stored = await ctx.ds.getAgent(this.agentId);
    if (stored === undefined) throw agentEvicted(this.agentId);
    if (stored.banned) throw agentBanned(this.agentId);
    // Superseded (renewed or re-attested) SVID: PERMISSION_DENIED, as for any other call with it.
    const agent = checkAgentStanding(stored, this.agentId, this.serial);
    this.#checkSvidCurrent();
    // Entries whose owner certification lapsed are not sent: the agent drops them (issue 11).
    const gate = ctx.certification;
    const all = await authorizedEntries(ctx, agent);
    const entries: typeof all = [];
    const withheld: { entry_id: string; spiffe_id: string; reason: string }[] = [];
    for (const e of all) {
      const reason = gate?.refusal(e);
      if (reason === undefined) entries.push(e);
      else withheld.push({ entry_id: e.entryId, spiffe_id: e.spiffeId, reason });
    }
    const feds = new Set<string>();
    for (const e of entries) for (const f of e.federatesWith) feds.add(f);
    const federated = await federatedBundles(ctx, feds);
    // Read last, after every await: a taint that landed meanwhile is in this push.
    const tainted = servedTaints(ctx);
    const update = {
      entries: entries.map(entryToAgentWire),
      bundle: bundleToWire(servedBundle(ctx)),
      federated_bundles: federated,
      tainted_x509_authorities: [...tainted.x509].sort(),
      tainted_jwt_authorities: [...tainted.jwt].sort(),
      x509_crls: [...(ctx.crls?.current() ?? [])],
      withheld_entries: withheld,
    };
    if (this.#closed) return;
    // CRLs are hashed as bytes: a large CRL through the JSON fingerprint would cost per byte.
    const crlHash = createHash('sha256');
    for (const c of update.x509_crls) crlHash.update(createHash('sha256').update(c).digest());
    const key = fingerprint({ ...update, x509_crls: [] }) + crlHash.digest('hex');
    if (key === this.#lastKey) return;
    // Again at the push: the computation above awaited, and time moved on.
    this.#checkSvidCurrent();
    this.#lastKey = key;
    this.#sequence += 1;
    this.call.write({ ...update, sequence: this.#sequence });
  }

  /** Throws UNAUTHENTICATED once the stream's SVID has expired on the server's clock. */
  #checkSvidCurrent(): void {
    if (nowSeconds(this.ctx) > this.notAfter) {
      throw unauthenticated(`the X509-SVID agent ${this.agentId} subscribed with expired at ${new Date(this.notAfter * 1000).toISOString()}; renew it (or attest again) and subscribe again`);
    }
  }

  /** Ends the stream with `err`'s status, or UNAVAILABLE when the server shuts down. */
  #finish(err?: unknown): void {
    if (this.#closed) return;
    this.#cleanup();
    // Shutdown ends with UNAVAILABLE: the agent should reconnect (to this or another server).
    this.call.emit('error', err === undefined ? { code: GrpcStatus.UNAVAILABLE, details: 'server is shutting down; reconnect' } : toServiceError(err));
  }

  #cleanup(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#immediate = undefined;
    for (const c of this.#cleanups.splice(0)) c();
  }
}
