/**
 * @module spiffe/jwt/limits
 *
 * Bounds on the audience of a JWT-SVID request, one definition for every room: the server
 * refuses a mint outside them (server/api/svid), and the agent refuses a Workload API
 * request outside them with INVALID_ARGUMENT before it reaches its cache or the server
 * (workloadapi/handlers, agent/jwt-cache).
 *
 * Threat: one workload growing a JWT-SVID, and the memory of whatever keeps it (the agent's
 * cache), without end through its audience list. Bounded, an audience set is at most
 * 32 × 1,024 characters, and for ASCII audiences the token carrying it stays under
 * `MAX_JWT_SVID_LENGTH`.
 */

/** Distinct audience values one JWT-SVID request may name. */
export const MAX_JWT_SVID_AUDIENCES = 32;

/** Longest audience value (UTF-16 code units, i.e. JavaScript string length). */
export const MAX_JWT_SVID_AUDIENCE_LENGTH = 1024;

/**
 * Why `audience` is outside the limits (a message naming the limit), or undefined when it
 * is within them. Empty values are not audiences and are skipped (the Workload API drops
 * them); a position is the value's index in `audience` as given; values are counted once.
 */
export function audienceLimitProblem(audience: readonly string[]): string | undefined {
  if (!Array.isArray(audience)) throw new TypeError('audienceLimitProblem needs an array of strings');
  const distinct = new Set<string>();
  for (let i = 0; i < audience.length; i++) {
    const a: unknown = audience[i];
    if (typeof a !== 'string') throw new TypeError(`audience[${i}] is not a string`);
    if (a === '') continue;
    if (a.length > MAX_JWT_SVID_AUDIENCE_LENGTH) return `audience[${i}] is ${a.length} characters (at most ${MAX_JWT_SVID_AUDIENCE_LENGTH})`;
    distinct.add(a);
  }
  if (distinct.size > MAX_JWT_SVID_AUDIENCES) return `too many audiences: ${distinct.size} distinct values (at most ${MAX_JWT_SVID_AUDIENCES})`;
  return undefined;
}
