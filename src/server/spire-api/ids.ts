/**
 * @module server/spire-api/ids
 *
 * SPIRE's `spire.api.types.SPIFFEID` (`{trust_domain, path}`) to and from SPIFFE ID
 * strings. A malformed ID is INVALID_ARGUMENT naming the field, as SPIRE's API answers.
 */
import { SpiffeId } from '../../spiffe/id.js';
import { badRequest } from '../status.js';

export interface SpireSpiffeId {
  trust_domain: string;
  path: string;
}

/** Parses a SPIRE SPIFFEID message; `what` names the field in the error. */
export function spiffeIdFromSpire(id: Partial<SpireSpiffeId> | null | undefined, what: string): SpiffeId {
  if (id === null || id === undefined) throw badRequest(`${what}: SPIFFE ID is missing`);
  const td = id.trust_domain ?? '';
  const path = id.path ?? '';
  if (td === '') throw badRequest(`${what}: trust domain is missing`);
  if (path !== '' && !path.startsWith('/')) throw badRequest(`${what}: path "${path.slice(0, 64)}" must start with "/"`);
  try {
    return SpiffeId.parse(`spiffe://${td}${path}`);
  } catch (err) {
    throw badRequest(`${what}: ${(err as Error).message}`);
  }
}

export function spiffeIdToSpire(id: SpiffeId | string): SpireSpiffeId {
  const parsed = typeof id === 'string' ? SpiffeId.parse(id) : id;
  return { trust_domain: parsed.trustDomain.name, path: parsed.path };
}
