/**
 * go-spiffe v2 and Mayfly read every SPIFFE ID and trust domain name of the shared table
 * the same way: same accept/reject verdict, same string form for accepted inputs, and
 * the same rule named for rejected ones. The one decided exception is the standard's
 * length limits, which Mayfly enforces and go-spiffe does not (rows with `lengthLimit`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpiffeId, TrustDomain } from '../../src/spiffe/id.js';
import { SpiffeIdError, type ErrorCode } from '../../src/spiffe/errors.js';
import { GoSpiffeJudge, type IdVerdict, type TrustDomainVerdict } from './go-spiffe/judge.js';
import { SPIFFE_ID_TABLE, TRUST_DOMAIN_TABLE } from './spiffe-id-table.js';

/** go-spiffe's error text (spiffeid/errors.go) for each rule, keyed by Mayfly's code for it. */
const GO_ERROR: Partial<Record<ErrorCode, string>> = {
  ERR_SPIFFE_ID_EMPTY: 'cannot be empty',
  ERR_SPIFFE_ID_WRONG_SCHEME: 'scheme is missing or invalid',
  ERR_SPIFFE_ID_MISSING_TRUST_DOMAIN: 'trust domain is missing',
  ERR_SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR: 'trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores',
  ERR_SPIFFE_ID_BAD_PATH_SEGMENT_CHAR: 'path segment characters are limited to letters, numbers, dots, dashes, and underscores',
  ERR_SPIFFE_ID_DOT_SEGMENT: 'path cannot contain dot segments',
  ERR_SPIFFE_ID_EMPTY_SEGMENT: 'path cannot contain empty segments',
  ERR_SPIFFE_ID_TRAILING_SLASH: 'path cannot have a trailing slash',
};

type Outcome<T> = { ok: true; value: T } | { ok: false; code: ErrorCode };

function mayfly<T>(fn: () => T): Outcome<T> {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (err instanceof SpiffeIdError) return { ok: false, code: err.code };
    throw err;
  }
}

function title(input: string, why: string): string {
  const shown = JSON.stringify(input);
  return `${why}: ${shown.length > 60 ? `${shown.slice(0, 50)}…(${Buffer.byteLength(input)} bytes)` : shown}`;
}

let judge: GoSpiffeJudge;
beforeAll(async () => {
  judge = await GoSpiffeJudge.start();
});
afterAll(async () => {
  await judge?.close();
});

describe('SPIFFE ID table: SpiffeId.parse vs go-spiffe spiffeid.FromString', () => {
  let verdicts: IdVerdict[];
  beforeAll(async () => {
    const answer = await judge.ask<{ results: IdVerdict[] }>({ op: 'ids', ids: SPIFFE_ID_TABLE.map((r) => r.input) });
    verdicts = answer.results;
  });

  it('is large, varied and free of duplicates', () => {
    expect(SPIFFE_ID_TABLE.length).toBeGreaterThanOrEqual(120);
    expect(new Set(SPIFFE_ID_TABLE.map((r) => r.input)).size).toBe(SPIFFE_ID_TABLE.length);
    expect(SPIFFE_ID_TABLE.filter((r) => !r.code).length).toBeGreaterThanOrEqual(25);
    expect(SPIFFE_ID_TABLE.filter((r) => r.lengthLimit).length).toBeGreaterThanOrEqual(6);
    expect(verdicts).toHaveLength(SPIFFE_ID_TABLE.length);
  });

  it.each(SPIFFE_ID_TABLE.map((row, i) => ({ row, i, name: title(row.input, row.why) })))('$name', ({ row, i }) => {
    const go = verdicts[i]!;
    const ours = mayfly(() => SpiffeId.parse(row.input));
    if (row.lengthLimit) {
      // The decided exception: Mayfly enforces the standard's limits, go-spiffe v2.9 does not.
      expect(ours).toEqual({ ok: false, code: row.code });
      expect(go).toEqual({ ok: true, id: row.input, trustDomain: expect.any(String), path: expect.any(String) });
      return;
    }
    if (!row.code) {
      expect(ours.ok, `Mayfly rejected a valid ID: ${JSON.stringify(ours)}`).toBe(true);
      expect(go.ok, `go-spiffe rejected a valid ID: ${JSON.stringify(go)}`).toBe(true);
      if (!ours.ok || !go.ok) return;
      expect(ours.value.toString()).toBe(row.input);
      expect(go.id).toBe(row.input);
      expect(ours.value.trustDomain.name).toBe(go.trustDomain);
      expect(ours.value.path).toBe(go.path);
      return;
    }
    expect(ours).toEqual({ ok: false, code: row.code });
    // Same rule broken, not just a rejection: go-spiffe's message for that rule.
    expect(go).toEqual({ ok: false, error: GO_ERROR[row.code] });
  });
});

describe('trust domain table: TrustDomain.parse vs go-spiffe spiffeid.TrustDomainFromString', () => {
  let verdicts: TrustDomainVerdict[];
  beforeAll(async () => {
    const answer = await judge.ask<{ results: TrustDomainVerdict[] }>({ op: 'trustDomains', names: TRUST_DOMAIN_TABLE.map((r) => r.input) });
    verdicts = answer.results;
  });

  it('is large enough and free of duplicates', () => {
    expect(TRUST_DOMAIN_TABLE.length).toBeGreaterThanOrEqual(30);
    expect(new Set(TRUST_DOMAIN_TABLE.map((r) => r.input)).size).toBe(TRUST_DOMAIN_TABLE.length);
    expect(verdicts).toHaveLength(TRUST_DOMAIN_TABLE.length);
  });

  it.each(TRUST_DOMAIN_TABLE.map((row, i) => ({ row, i, name: title(row.input, row.why) })))('$name', ({ row, i }) => {
    const go = verdicts[i]!;
    const ours = mayfly(() => TrustDomain.parse(row.input));
    if (row.lengthLimit) {
      expect(ours).toEqual({ ok: false, code: row.code });
      expect(go.ok, `go-spiffe now rejects an over-long input: ${JSON.stringify(go)}`).toBe(true);
      return;
    }
    if (!row.code) {
      expect(ours.ok, `Mayfly rejected a valid trust domain: ${JSON.stringify(ours)}`).toBe(true);
      expect(go).toEqual({ ok: true, name: row.name, id: `spiffe://${row.name}` });
      if (!ours.ok) return;
      expect(ours.value.name).toBe(row.name);
      expect(ours.value.idString).toBe(`spiffe://${row.name}`);
      return;
    }
    expect(ours).toEqual({ ok: false, code: row.code });
    // go-spiffe reports an empty name as a missing trust domain; Mayfly calls it empty.
    const goText = row.code === 'ERR_SPIFFE_ID_EMPTY' ? 'trust domain is missing' : GO_ERROR[row.code];
    expect(go).toEqual({ ok: false, error: goText });
  });
});
