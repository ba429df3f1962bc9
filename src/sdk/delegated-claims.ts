/**
 * @module sdk/delegated-claims
 *
 * Decoding (not verifying) a delegated token's claims for the agent that received it
 * (sdk/exchange-for-user, sdk/exchange-via-agent): the resource server verifies.
 */
import { TokenExchangeError } from './errors.js';

const failed = (msg: string, cause?: unknown): TokenExchangeError => new TokenExchangeError('ERR_TOKEN_EXCHANGE_FAILED', msg, cause === undefined ? undefined : { cause });

export function decodeClaims(token: string): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3) throw failed('the endpoint issued no compact JWT');
  try {
    const c: unknown = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8'));
    if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new Error('not an object');
    return c as Record<string, unknown>;
  } catch (cause) {
    throw failed('the issued token has no JSON claims', cause);
  }
}

export function actorChainOf(claims: Record<string, unknown>): string[] {
  const chain: string[] = [];
  let act = claims.act as { sub?: unknown; act?: unknown } | undefined;
  while (typeof act === 'object' && act !== null && typeof act.sub === 'string' && chain.length < 16) {
    chain.push(act.sub);
    act = act.act as typeof act;
  }
  return chain;
}
