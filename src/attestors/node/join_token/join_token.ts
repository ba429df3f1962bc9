/**
 * @module attestors/node/join_token
 *
 * The `join_token` node attestor: an operator creates a short-lived random token on the
 * server and hands it to one node out of band; the node's agent presents it once.
 *
 * Threats it stops:
 * - Replay: the token is consumed atomically in the datastore (`consumeJoinToken`), so of
 *   any number of concurrent attestations with one token exactly one succeeds, and an
 *   expired, unknown or used token fails the same way (`ERR_JOIN_TOKEN_INVALID`).
 * - Token disclosure through the identity: SPIRE historically put the token in the agent
 *   ID (`.../join_token/<token>`), so anyone who saw the agent's certificate saw the
 *   secret. Here the agent ID ends in a fresh random UUID unrelated to the token. The one
 *   selector emitted, `join_token:sha256:<hex>`, is a SHA-256 of the token (122 random
 *   bits behind it, so not reversible); it lets a node-alias entry created together with
 *   the token (`CreateJoinToken` with an agent ID) match the agent that used it.
 */
import { createHash, randomUUID } from 'node:crypto';
import { MayflyError } from '../../../spiffe/errors.js';
import type { Selector } from '../../../registration/selector.js';
import type { NodeAttestationContext, NodeAttestationResult, NodeAttestor } from '../attestor.js';

export const JOIN_TOKEN_TYPE = 'join_token';
/** Longest token accepted (bytes); generated tokens are 36-character UUIDs. */
export const MAX_JOIN_TOKEN_LENGTH = 256;
const TOKEN_RE = /^[A-Za-z0-9_-]+$/;

/** The node selector a token yields: `join_token:sha256:<hex>`. */
export function joinTokenSelector(token: string): Selector {
  return { type: JOIN_TOKEN_TYPE, value: `sha256:${createHash('sha256').update(token, 'utf8').digest('hex')}` };
}

/** A fresh random join token. */
export function generateJoinToken(): string {
  return randomUUID();
}

/**
 * What the attestor needs of storage: one atomic consume. The attestor stores nothing
 * itself; the server passes its datastore, which implements this (`Datastore.consumeJoinToken`).
 */
export interface JoinTokenConsumer {
  /**
   * Consumes `token` at `now` (Unix seconds): succeeds for exactly one caller of a token that
   * exists, is unused and has not expired; throws MayflyError `ERR_JOIN_TOKEN_INVALID` for
   * unknown, used and expired tokens alike.
   */
  consumeJoinToken(token: string, now: number): Promise<unknown>;
}

export interface JoinTokenAttestorConfig {
  datastore: JoinTokenConsumer;
}

export class JoinTokenAttestor implements NodeAttestor {
  readonly type = JOIN_TOKEN_TYPE;
  readonly #ds: JoinTokenConsumer;

  constructor(cfg: JoinTokenAttestorConfig) {
    this.#ds = cfg.datastore;
  }

  async attest(payload: Uint8Array, ctx: NodeAttestationContext): Promise<NodeAttestationResult> {
    if (!(payload instanceof Uint8Array) || payload.length === 0 || payload.length > MAX_JOIN_TOKEN_LENGTH) {
      throw new MayflyError('ERR_JOIN_TOKEN_INVALID', 'join token is invalid, expired or already used; ask the operator for a new one');
    }
    const token = Buffer.from(payload).toString('utf8');
    if (!TOKEN_RE.test(token)) {
      throw new MayflyError('ERR_JOIN_TOKEN_INVALID', 'join token is invalid, expired or already used; ask the operator for a new one');
    }
    // Throws ERR_JOIN_TOKEN_INVALID for unknown, used and expired tokens alike.
    await this.#ds.consumeJoinToken(token, Math.floor(ctx.now.getTime() / 1000));
    return {
      agentId: ctx.trustDomain.idWithPath(`/spire/agent/${JOIN_TOKEN_TYPE}/${randomUUID()}`),
      selectors: [joinTokenSelector(token)],
      canReattest: false,
    };
  }
}
