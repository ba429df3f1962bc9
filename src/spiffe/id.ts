/**
 * @module spiffe/id
 *
 * SPIFFE IDs and trust domain names, parsed strictly by the SPIFFE ID standard.
 *
 * Threat: an identity string that two parsers read differently. Node's `new URL()`
 * decodes `%2e%2e`, strips tabs and keeps uppercase hosts, so `spiffe://td/a/%2e%2e/admin`
 * would become `/admin` there. This parser never normalises: every byte of the input is
 * checked against the standard's grammar and anything outside it is rejected with a code
 * naming the rule. The grammar accepted is the one go-spiffe accepts (checked by the
 * interop table in test/interop); on top of it the standard's length limits apply
 * (ID ≤ 2048 bytes, trust domain ≤ 255 bytes), which go-spiffe does not enforce.
 */
import { SpiffeIdError, type SpiffeErrorCode } from './errors.js';

const SCHEME = 'spiffe://';
/** The longest SPIFFE ID the standard has implementations generate (bytes). */
export const MAX_SPIFFE_ID_LENGTH = 2048;
/** The longest trust domain name the standard allows (bytes). */
export const MAX_TRUST_DOMAIN_LENGTH = 255;

function isTrustDomainChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2e || c === 0x2d || c === 0x5f // . - _
  );
}

function isPathChar(c: number): boolean {
  return isTrustDomainChar(c) || (c >= 0x41 && c <= 0x5a); // plus A-Z
}

function fail(code: SpiffeErrorCode, input: string, why: string): never {
  const shown = input.length > 80 ? `${input.slice(0, 77)}...` : input;
  throw new SpiffeIdError(code, `invalid SPIFFE ID ${JSON.stringify(shown)}: ${why}`);
}

function checkTrustDomainName(name: string, input: string): void {
  if (name.length === 0) fail('ERR_SPIFFE_ID_MISSING_TRUST_DOMAIN', input, 'trust domain is missing');
  for (let i = 0; i < name.length; i++) {
    if (!isTrustDomainChar(name.charCodeAt(i))) {
      fail(
        'ERR_SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR',
        input,
        `trust domain may only hold lowercase letters, digits, '.', '-' and '_' (found ${JSON.stringify(name[i])} at offset ${i}; ports, userinfo, uppercase and percent-encoding are not allowed)`,
      );
    }
  }
  // Only ASCII reaches here, so characters are bytes.
  if (name.length > MAX_TRUST_DOMAIN_LENGTH) {
    fail('ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG', input, `trust domain is ${name.length} bytes; the limit is ${MAX_TRUST_DOMAIN_LENGTH}`);
  }
}

function checkPath(path: string, input: string): void {
  if (path.length === 0) return;
  if (path.charCodeAt(0) !== 0x2f) fail('ERR_SPIFFE_ID_NO_LEADING_SLASH', input, "path must start with '/'");
  let segStart = 1;
  for (let i = 1; i <= path.length; i++) {
    const c = i < path.length ? path.charCodeAt(i) : 0x2f;
    if (c === 0x2f) {
      const seg = path.slice(segStart, i);
      if (seg.length === 0) {
        if (i === path.length) fail('ERR_SPIFFE_ID_TRAILING_SLASH', input, 'path must not end with a slash');
        fail('ERR_SPIFFE_ID_EMPTY_SEGMENT', input, 'path must not contain empty segments');
      }
      if (seg === '.' || seg === '..') fail('ERR_SPIFFE_ID_DOT_SEGMENT', input, "path must not contain '.' or '..' segments");
      segStart = i + 1;
    } else if (!isPathChar(c)) {
      fail(
        'ERR_SPIFFE_ID_BAD_PATH_SEGMENT_CHAR',
        input,
        `path segments may only hold letters, digits, '.', '-' and '_' (found ${JSON.stringify(path[i])} at offset ${i}; percent-encoding, queries and fragments are not allowed)`,
      );
    }
  }
}

/** A trust domain name, e.g. `example.org`. Immutable; compare with `equals` or by `name`. */
export class TrustDomain {
  readonly name: string;

  private constructor(name: string) {
    this.name = name;
  }

  /**
   * Parses a bare name (`example.org`) or a SPIFFE ID (`spiffe://example.org`, or one
   * with a path, whose trust domain is taken: go-spiffe's `TrustDomainFromString` and
   * the other SPIFFE libraries do the same, checked by the interop table).
   */
  static parse(nameOrId: string): TrustDomain {
    if (typeof nameOrId !== 'string') throw new TypeError('trust domain must be a string');
    if (nameOrId.length === 0) fail('ERR_SPIFFE_ID_EMPTY', nameOrId, 'trust domain is empty');
    if (nameOrId.includes(':/')) return SpiffeId.parse(nameOrId).trustDomain;
    checkTrustDomainName(nameOrId, nameOrId);
    return new TrustDomain(nameOrId);
  }

  /** @internal name already checked */
  static fromCheckedName(name: string): TrustDomain {
    return new TrustDomain(name);
  }

  /** `spiffe://<name>`: the trust domain's own SPIFFE ID, used as the bundle map key. */
  get idString(): string {
    return SCHEME + this.name;
  }

  /** The trust domain's SPIFFE ID (empty path). */
  get id(): SpiffeId {
    return SpiffeId.fromParts(this, '');
  }

  /** A workload ID in this trust domain; `path` must start with '/'. */
  idWithPath(path: string): SpiffeId {
    checkPath(path, this.idString + path);
    if (path === '') fail('ERR_SPIFFE_ID_PATH_REQUIRED', this.idString, 'a workload SPIFFE ID needs a path');
    const id = SpiffeId.fromParts(this, path);
    checkLength(id.toString());
    return id;
  }

  equals(other: TrustDomain): boolean {
    return other.name === this.name;
  }

  toString(): string {
    return this.name;
  }

  toJSON(): string {
    return this.name;
  }
}

function checkLength(input: string): void {
  if (Buffer.byteLength(input, 'utf8') > MAX_SPIFFE_ID_LENGTH) {
    fail('ERR_SPIFFE_ID_TOO_LONG', input, `ID is ${Buffer.byteLength(input, 'utf8')} bytes; the limit is ${MAX_SPIFFE_ID_LENGTH}`);
  }
}

/** A SPIFFE ID: `spiffe://<trust domain><path>`. Immutable. */
export class SpiffeId {
  readonly trustDomain: TrustDomain;
  /** '' for a trust domain ID, else '/seg/seg'. */
  readonly path: string;
  readonly #str: string;

  private constructor(td: TrustDomain, path: string) {
    this.trustDomain = td;
    this.path = path;
    this.#str = SCHEME + td.name + path;
  }

  /** Parses any SPIFFE ID, with or without path. Throws SpiffeIdError naming the rule broken. */
  static parse(input: string): SpiffeId {
    if (typeof input !== 'string') throw new TypeError('SPIFFE ID must be a string');
    if (input.length === 0) fail('ERR_SPIFFE_ID_EMPTY', input, 'it is empty');
    if (!input.startsWith(SCHEME)) fail('ERR_SPIFFE_ID_WRONG_SCHEME', input, "scheme must be 'spiffe://' (lowercase)");
    const rest = input.slice(SCHEME.length);
    const slash = rest.indexOf('/');
    const tdName = slash === -1 ? rest : rest.slice(0, slash);
    const path = slash === -1 ? '' : rest.slice(slash);
    checkTrustDomainName(tdName, input);
    checkPath(path, input);
    checkLength(input);
    return new SpiffeId(TrustDomain.fromCheckedName(tdName), path);
  }

  /** Parses a workload SPIFFE ID: like `parse`, but a path is required. */
  static parseWorkload(input: string): SpiffeId {
    const id = SpiffeId.parse(input);
    if (id.path === '') fail('ERR_SPIFFE_ID_PATH_REQUIRED', input, 'a workload SPIFFE ID needs a path (this is a trust domain ID)');
    return id;
  }

  /** @internal parts already checked */
  static fromParts(td: TrustDomain, path: string): SpiffeId {
    return new SpiffeId(td, path);
  }

  /** True for `spiffe://td` with no path. */
  get isTrustDomainId(): boolean {
    return this.path === '';
  }

  memberOf(td: TrustDomain): boolean {
    return this.trustDomain.name === td.name;
  }

  equals(other: SpiffeId): boolean {
    return other.#str === this.#str;
  }

  toString(): string {
    return this.#str;
  }

  toJSON(): string {
    return this.#str;
  }
}
