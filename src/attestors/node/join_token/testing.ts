/**
 * @module attestors/node/join_token/testing
 *
 * Conformance fixtures of `NodeAttestor "join_token"` (server and agent side), over a
 * hand-written token store that keeps the contract the datastore keeps: a token is
 * consumed once, and an unknown, used or expired one is `ERR_JOIN_TOKEN_INVALID`. Not for
 * production use.
 */
import { MayflyError } from '../../../spiffe/errors.js';
import type { AgentNodeAttestorFixture, NodeAttestorFixture } from '../conformance.js';
import { generateJoinToken, JoinTokenAttestor, joinTokenSelector, MAX_JOIN_TOKEN_LENGTH, type JoinTokenConsumer } from './join_token.js';

/** Join tokens in memory: `issue` creates one, `consumeJoinToken` takes it once. */
export class MemoryJoinTokens implements JoinTokenConsumer {
  readonly #expiresAt = new Map<string, number>();

  /** A new token valid for `ttlSeconds` (negative: already expired). */
  issue(ttlSeconds = 600): string {
    const token = generateJoinToken();
    this.#expiresAt.set(token, Math.floor(Date.now() / 1000) + ttlSeconds);
    return token;
  }

  async consumeJoinToken(token: string, now: number): Promise<void> {
    const exp = this.#expiresAt.get(token);
    this.#expiresAt.delete(token);
    if (exp === undefined || exp <= now) throw new MayflyError('ERR_JOIN_TOKEN_INVALID', 'join token is invalid, expired or already used');
  }
}

const tokens = new MemoryJoinTokens();
const bytes = (s: string): Uint8Array => Buffer.from(s, 'utf8');

const server: NodeAttestorFixture = {
  binary: 'server',
  kind: 'NodeAttestor',
  name: 'join_token',
  pluginData: () => '',
  deps: () => ({ joinTokens: tokens }),
  evidence: async () => bytes(tokens.issue()),
  selectors: (evidence) => {
    const s = joinTokenSelector(Buffer.from(evidence).toString('utf8'));
    return [`${s.type}:${s.value}`];
  },
  canReattest: false,
  refused: {
    'a token the server never issued': async () => bytes(generateJoinToken()),
    'an expired token': async () => bytes(tokens.issue(-1)),
    'a token with characters no token has': async () => bytes(`${tokens.issue()}/../x`),
    'a token longer than any issued': async () => bytes('a'.repeat(MAX_JOIN_TOKEN_LENGTH + 1)),
  },
};

const agent: AgentNodeAttestorFixture = {
  binary: 'agent',
  kind: 'NodeAttestor',
  name: 'join_token',
  pluginData: () => '',
  deps: () => ({ joinToken: tokens.issue() }),
  canReattest: false,
  serverSide: () => new JoinTokenAttestor({ datastore: tokens }),
  nothingToSend: () => ({}),
};

export const pluginFixtures = [server, agent];
