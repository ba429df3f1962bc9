/**
 * @module server/spire-api/ids
 *
 * SPIRE's `spire.api.types.SPIFFEID` (`{trust_domain, path}`) to and from SPIFFE ID
 * strings. A malformed ID is INVALID_ARGUMENT naming the field, as SPIRE's API answers.
 */
import { isTemplateId } from '../../registration/template.js';
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

/**
 * A SPIFFE ID as SPIRE's message. An entry template's ID (Mayfly's, issue 11; SPIRE has
 * none) is split the same way, its path holding the placeholders literally
 * (`/ns/{{k8s:ns}}`): not a valid SPIFFE ID, so a SPIRE client that parses it refuses it.
 */
export function spiffeIdToSpire(id: SpiffeId | string): SpireSpiffeId {
  if (typeof id === 'string' && isTemplateId(id) && id.startsWith('spiffe://')) {
    const rest = id.slice('spiffe://'.length);
    const slash = rest.indexOf('/');
    return { trust_domain: slash === -1 ? rest : rest.slice(0, slash), path: slash === -1 ? '' : rest.slice(slash) };
  }
  const parsed = typeof id === 'string' ? SpiffeId.parse(id) : id;
  return { trust_domain: parsed.trustDomain.name, path: parsed.path };
}
