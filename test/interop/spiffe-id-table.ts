/**
 * @module test/interop/spiffe-id-table
 *
 * The shared table of SPIFFE IDs and trust domain names that every foreign client
 * (go-spiffe today, others later) judges next to Mayfly's parser. Each row carries the
 * standard's verdict: no `code` means valid; otherwise the Mayfly error code of the first
 * rule broken.
 *
 * The single decided exception: the SPIFFE ID standard limits an ID to 2048 bytes and a
 * trust domain to 255 bytes. Mayfly enforces both; go-spiffe v2.9 enforces neither. Rows
 * that probe only those limits carry `lengthLimit: true`: Mayfly must reject them with the
 * length code, and a foreign client that does not enforce the limits accepts them.
 */
import type { ErrorCode } from '../../src/spiffe/errors.js';

export interface IdRow {
  /** What the row probes. */
  why: string;
  input: string;
  /** Mayfly's error code; absent when the input is valid. */
  code?: ErrorCode;
  /** Valid by grammar, rejected only by the standard's length limits. */
  lengthLimit?: true;
}

const ok = (input: string, why: string): IdRow => ({ input, why });
const bad = (input: string, code: ErrorCode, why: string): IdRow => ({ input, why, code });
const tooLong = (input: string, code: 'ERR_SPIFFE_ID_TOO_LONG' | 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG', why: string): IdRow => ({
  input,
  why,
  code,
  lengthLimit: true,
});

const SCHEME = 'spiffe://';
/** A path of `n` bytes made of 'a', with a leading slash, so that `SCHEME + td + path` has the wanted size. */
const pathOf = (n: number): string => `/${'a'.repeat(n - 1)}`;
/** An ID of exactly `bytes` bytes in trust domain `td`. */
const idOfLength = (td: string, bytes: number): string => SCHEME + td + pathOf(bytes - SCHEME.length - td.length);
/** Many short segments adding up to an ID of exactly `bytes` bytes (`bytes` - 11 must be even). */
const segmentedIdOfLength = (bytes: number): string => `${SCHEME}td${'/x'.repeat((bytes - SCHEME.length - 2) / 2)}`;

const EMPTY: ErrorCode = 'ERR_SPIFFE_ID_EMPTY';
const SCHEME_BAD: ErrorCode = 'ERR_SPIFFE_ID_WRONG_SCHEME';
const NO_TD: ErrorCode = 'ERR_SPIFFE_ID_MISSING_TRUST_DOMAIN';
const TD_CHAR: ErrorCode = 'ERR_SPIFFE_ID_BAD_TRUST_DOMAIN_CHAR';
const PATH_CHAR: ErrorCode = 'ERR_SPIFFE_ID_BAD_PATH_SEGMENT_CHAR';
const DOT: ErrorCode = 'ERR_SPIFFE_ID_DOT_SEGMENT';
const EMPTY_SEG: ErrorCode = 'ERR_SPIFFE_ID_EMPTY_SEGMENT';
const TRAILING: ErrorCode = 'ERR_SPIFFE_ID_TRAILING_SLASH';

/** Characters from RFC 3986 that URLs allow in a path but SPIFFE IDs do not. */
const URL_PATH_CHARS = ['~', ':', '@', '!', '$', '&', "'", '(', ')', '*', '+', ',', ';', '='];
/** Characters no URL allows unescaped. */
const UNSAFE_CHARS = ['"', '<', '>', '\\', '^', '`', '{', '|', '}', '[', ']'];

export const SPIFFE_ID_TABLE: readonly IdRow[] = [
  // Valid shapes
  ok('spiffe://example.org', 'trust domain ID, no path'),
  ok('spiffe://example.org/workload', 'one segment'),
  ok('spiffe://example.org/ns/prod/sa/api', 'Kubernetes-style path'),
  ok('spiffe://td/A-Z_a.z', 'every class of path character'),
  ok('spiffe://td/UPPER/MiXeD', 'uppercase is allowed in the path'),
  ok('spiffe://td/...', "'...' is a name, not a dot segment"),
  ok('spiffe://td/.a', 'leading dot in a segment'),
  ok('spiffe://td/a.', 'trailing dot in a segment'),
  ok('spiffe://td/..a', "'..' prefix in a segment"),
  ok('spiffe://td/a..', "'..' suffix in a segment"),
  ok('spiffe://td/.../x/....', 'dotted names among segments'),
  ok('spiffe://td/_-.', 'only punctuation'),
  ok('spiffe://td/0/1/2', 'digit segments'),
  ok('spiffe://1.2.3.4', 'IPv4-looking trust domain is just a name'),
  ok('spiffe://1.2.3.4/x', 'IPv4-looking trust domain with a path'),
  ok('spiffe://a_b.c-d', 'underscore and dash in the trust domain'),
  ok('spiffe://-td', 'leading dash in the trust domain'),
  ok('spiffe://.td', 'leading dot in the trust domain'),
  ok('spiffe://td./x', 'trailing dot in the trust domain'),
  ok('spiffe://td..org', 'double dot inside the trust domain'),
  ok('spiffe://./x', "trust domain '.'"),
  ok('spiffe://../x', "trust domain '..'"),
  ok('spiffe://_', "trust domain '_'"),
  ok('spiffe://0', "trust domain '0'"),
  ok('spiffe://xn--bcher-kva.example/x', 'punycode trust domain'),
  ok('spiffe://localhost/x', 'localhost is just a name'),
  ok(`spiffe://td${'/s'.repeat(200)}`, 'two hundred segments'),
  ok(`spiffe://td/${'a'.repeat(1000)}`, 'one 1000-byte segment'),
  ok(idOfLength('td', 2048), 'exactly 2048 bytes'),
  ok(idOfLength('a'.repeat(255), 2048), 'exactly 2048 bytes with a 255-byte trust domain'),
  ok(segmentedIdOfLength(2047), '2047 bytes of short segments'),
  ok(SCHEME + 'a'.repeat(255), 'trust domain of exactly 255 bytes'),
  ok(`${SCHEME}${'a'.repeat(255)}/x`, '255-byte trust domain with a path'),
  ok(`${SCHEME}${'a.'.repeat(127)}a`, '255-byte trust domain of labels'),

  // Empty and scheme
  bad('', EMPTY, 'empty string'),
  bad('example.org', SCHEME_BAD, 'no scheme'),
  bad('example.org/x', SCHEME_BAD, 'no scheme, with a path'),
  bad('spiffe:/td', SCHEME_BAD, 'one slash after the scheme'),
  bad('spiffe:td/x', SCHEME_BAD, 'no slashes after the scheme'),
  bad('spiffe//td', SCHEME_BAD, 'no colon'),
  bad('spiffe:', SCHEME_BAD, 'scheme only'),
  bad('spiffe', SCHEME_BAD, 'scheme name only'),
  bad('SPIFFE://td/x', SCHEME_BAD, 'uppercase scheme'),
  bad('Spiffe://td', SCHEME_BAD, 'capitalised scheme'),
  bad('https://td/x', SCHEME_BAD, 'https scheme'),
  bad('spiffes://td/x', SCHEME_BAD, 'similar scheme'),
  bad('://td/x', SCHEME_BAD, 'empty scheme'),
  bad(' spiffe://td/x', SCHEME_BAD, 'leading space'),
  bad('\tspiffe://td/x', SCHEME_BAD, 'leading tab'),
  bad('\nspiffe://td', SCHEME_BAD, 'leading newline'),
  bad('\u0000spiffe://td', SCHEME_BAD, 'leading NUL'),
  bad('\ufeffspiffe://td', SCHEME_BAD, 'leading byte order mark'),
  bad('spiffe:\\\\td\\x', SCHEME_BAD, 'backslashes instead of slashes'),
  bad('ｓpiffe://td', SCHEME_BAD, 'fullwidth letter in the scheme'),

  // Missing trust domain
  bad('spiffe://', NO_TD, 'nothing after the scheme'),
  bad('spiffe:///', NO_TD, 'slash where the trust domain should be'),
  bad('spiffe:///x', NO_TD, 'path without a trust domain'),
  bad('spiffe:////x', NO_TD, 'two slashes without a trust domain'),

  // Trust domain characters
  bad('spiffe://Example.org', TD_CHAR, 'uppercase trust domain'),
  bad('spiffe://EXAMPLE.ORG/x', TD_CHAR, 'all-uppercase trust domain'),
  bad('spiffe://tD', TD_CHAR, 'one uppercase letter'),
  bad('spiffe://td:8080', TD_CHAR, 'port'),
  bad('spiffe://td:8080/x', TD_CHAR, 'port with a path'),
  bad('spiffe://td:/x', TD_CHAR, 'empty port'),
  bad('spiffe://:80', TD_CHAR, 'port without a host'),
  bad('spiffe://user@td', TD_CHAR, 'userinfo'),
  bad('spiffe://user:pass@td/x', TD_CHAR, 'userinfo with a password'),
  bad('spiffe://@td', TD_CHAR, 'empty userinfo'),
  bad('spiffe://td@', TD_CHAR, 'trailing at sign'),
  bad('spiffe://td%2eorg', TD_CHAR, 'percent-encoded dot in the trust domain'),
  bad('spiffe://%74d/x', TD_CHAR, 'percent-encoded letter in the trust domain'),
  bad('spiffe://td%2Fx', TD_CHAR, 'percent-encoded slash in the trust domain'),
  bad('spiffe://[::1]', TD_CHAR, 'IPv6 literal'),
  bad('spiffe://[::1]:443/x', TD_CHAR, 'IPv6 literal with a port'),
  bad('spiffe://::1', TD_CHAR, 'bare IPv6-looking host'),
  bad('spiffe://[fe80::1%25eth0]/x', TD_CHAR, 'IPv6 zone identifier'),
  bad('spiffe://td?x=1', TD_CHAR, 'query right after the trust domain'),
  bad('spiffe://td#frag', TD_CHAR, 'fragment right after the trust domain'),
  bad('spiffe://t d', TD_CHAR, 'space in the trust domain'),
  bad('spiffe://td\t', TD_CHAR, 'trailing tab in the trust domain'),
  bad('spiffe://td /x', TD_CHAR, 'space before the path'),
  bad('spiffe://td\n/x', TD_CHAR, 'newline before the path'),
  bad('spiffe://td\u0000/x', TD_CHAR, 'NUL in the trust domain'),
  bad('spiffe://tä.org', TD_CHAR, 'non-ASCII letter in the trust domain'),
  bad('spiffe://bücher.example/x', TD_CHAR, 'IDN in Unicode form'),
  bad('spiffe://😀/x', TD_CHAR, 'emoji trust domain'),
  bad('spiffe://ｔｄ/x', TD_CHAR, 'fullwidth trust domain'),
  bad('spiffe://td\\x', TD_CHAR, 'backslash as a path separator'),
  bad('spiffe://td~/x', TD_CHAR, 'tilde in the trust domain'),
  bad('spiffe://td+x', TD_CHAR, 'plus in the trust domain'),
  bad('spiffe://td\u200b.org', TD_CHAR, 'zero-width space in the trust domain'),

  // Path structure
  bad('spiffe://td/', TRAILING, 'slash only'),
  bad('spiffe://td/x/', TRAILING, 'trailing slash'),
  bad('spiffe://td/a/b/', TRAILING, 'trailing slash after two segments'),
  bad('spiffe://td/.../', TRAILING, "trailing slash after '...'"),
  bad('spiffe://td//', EMPTY_SEG, 'two slashes'),
  bad('spiffe://td//x', EMPTY_SEG, 'empty first segment'),
  bad('spiffe://td/x//y', EMPTY_SEG, 'empty middle segment'),
  bad('spiffe://td/x///', EMPTY_SEG, 'several empty segments at the end'),
  bad('spiffe://td/.', DOT, "'.' segment"),
  bad('spiffe://td/..', DOT, "'..' segment"),
  bad('spiffe://td/./x', DOT, "leading '.'"),
  bad('spiffe://td/x/../y', DOT, "'..' in the middle"),
  bad('spiffe://td/x/.', DOT, "trailing '.'"),
  bad('spiffe://td/./', DOT, "'.' then a trailing slash"),
  bad('spiffe://td/../admin', DOT, 'climbing out of the trust domain'),
  bad('spiffe://td/x/y/z/../../..', DOT, "many '..'"),
  bad('spiffe://td/.../..', DOT, "'...' then '..'"),

  // Percent-encoding in the path
  bad('spiffe://td/%2e%2e', PATH_CHAR, "percent-encoded '..'"),
  bad('spiffe://td/a/%2e%2e/admin', PATH_CHAR, "percent-encoded '..' in the middle"),
  bad('spiffe://td/%2E', PATH_CHAR, "percent-encoded '.' (uppercase hex)"),
  bad('spiffe://td/%41', PATH_CHAR, 'percent-encoded letter'),
  bad('spiffe://td/a%20b', PATH_CHAR, 'percent-encoded space'),
  bad('spiffe://td/x%2Fy', PATH_CHAR, 'percent-encoded slash'),
  bad('spiffe://td/%00', PATH_CHAR, 'percent-encoded NUL'),
  bad('spiffe://td/%', PATH_CHAR, 'lone percent sign'),
  bad('spiffe://td/%zz', PATH_CHAR, 'invalid percent escape'),
  bad('spiffe://td/x/%', PATH_CHAR, 'percent sign as the last byte'),

  // Query and fragment
  bad('spiffe://td/x?y=1', PATH_CHAR, 'query'),
  bad('spiffe://td/x#y', PATH_CHAR, 'fragment'),
  bad('spiffe://td/?', PATH_CHAR, 'empty query'),
  bad('spiffe://td/x?', PATH_CHAR, 'trailing question mark'),
  bad('spiffe://td/#', PATH_CHAR, 'empty fragment'),

  // Whitespace, control characters and Unicode in the path
  bad('spiffe://td/a b', PATH_CHAR, 'space'),
  bad('spiffe://td/a\tb', PATH_CHAR, 'tab'),
  bad('spiffe://td/a\nb', PATH_CHAR, 'newline'),
  bad('spiffe://td/a\rb', PATH_CHAR, 'carriage return'),
  bad('spiffe://td/a\u0000b', PATH_CHAR, 'NUL'),
  bad('spiffe://td/x\u0000', PATH_CHAR, 'trailing NUL'),
  bad('spiffe://td/x ', PATH_CHAR, 'trailing space'),
  bad('spiffe://td/x\n', PATH_CHAR, 'trailing newline'),
  bad('spiffe://td/x\u007f', PATH_CHAR, 'DEL'),
  bad('spiffe://td/\u00a0', PATH_CHAR, 'no-break space'),
  bad('spiffe://td/a\u2028b', PATH_CHAR, 'line separator'),
  bad('spiffe://td/\u0085', PATH_CHAR, 'next line (C1 control)'),
  bad('spiffe://td/\u200b', PATH_CHAR, 'zero-width space'),
  bad('spiffe://td/é', PATH_CHAR, 'accented letter'),
  bad('spiffe://td/\u0130', PATH_CHAR, 'dotted capital I (changes under case folding)'),
  bad('spiffe://td/ｘ', PATH_CHAR, 'fullwidth letter'),
  bad('spiffe://td/😀', PATH_CHAR, 'emoji'),
  bad('spiffe://td/\u2024\u2024', PATH_CHAR, "one-dot leaders that look like '..'"),
  bad('spiffe://td/a\u202eb', PATH_CHAR, 'right-to-left override'),
  ...URL_PATH_CHARS.map((c) => bad(`spiffe://td/a${c}b`, PATH_CHAR, `URL path character ${JSON.stringify(c)}`)),
  ...UNSAFE_CHARS.map((c) => bad(`spiffe://td/a${c}b`, PATH_CHAR, `unsafe character ${JSON.stringify(c)}`)),

  // Length limits: the standard's, which go-spiffe does not enforce (the decided exception)
  tooLong(idOfLength('td', 2049), 'ERR_SPIFFE_ID_TOO_LONG', '2049 bytes: one over the limit'),
  tooLong(idOfLength('a'.repeat(255), 2049), 'ERR_SPIFFE_ID_TOO_LONG', '2049 bytes with a 255-byte trust domain'),
  tooLong(segmentedIdOfLength(2049), 'ERR_SPIFFE_ID_TOO_LONG', '2049 bytes of short segments'),
  tooLong(idOfLength('td', 10_000), 'ERR_SPIFFE_ID_TOO_LONG', '10 000 bytes'),
  tooLong(SCHEME + 'a'.repeat(256), 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG', '256-byte trust domain'),
  tooLong(`${SCHEME}${'a'.repeat(256)}/x`, 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG', '256-byte trust domain with a path'),
  tooLong(SCHEME + 'a'.repeat(1000), 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG', '1000-byte trust domain'),
  tooLong(idOfLength('a'.repeat(300), 3000), 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG', 'both limits broken'),

  // Over-long and invalid: rejected by everyone
  bad(`${idOfLength('td', 3000)}%`, PATH_CHAR, 'over-long with a bad path character'),
  bad(`${idOfLength('td', 3000)}/`, TRAILING, 'over-long with a trailing slash'),
  bad(SCHEME + 'A'.repeat(300), TD_CHAR, 'over-long trust domain with uppercase'),
  bad(`${SCHEME}${'a'.repeat(300)}:443`, TD_CHAR, 'over-long trust domain with a port'),
];

export interface TrustDomainRow {
  why: string;
  input: string;
  /** The trust domain name Mayfly and go-spiffe should return, when valid. */
  name?: string;
  code?: ErrorCode;
  lengthLimit?: true;
}

const tdOk = (input: string, name: string, why: string): TrustDomainRow => ({ input, name, why });
const tdBad = (input: string, code: ErrorCode, why: string): TrustDomainRow => ({ input, code, why });
const tdTooLong = (input: string, code: 'ERR_SPIFFE_ID_TOO_LONG' | 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG', why: string): TrustDomainRow => ({
  input,
  code,
  why,
  lengthLimit: true,
});

export const TRUST_DOMAIN_TABLE: readonly TrustDomainRow[] = [
  tdOk('example.org', 'example.org', 'plain name'),
  tdOk('spiffe://example.org', 'example.org', 'trust domain ID'),
  tdOk('spiffe://example.org/x', 'example.org', 'a SPIFFE ID with a path names its trust domain'),
  tdOk('spiffe://example.org/ns/a/sa/b', 'example.org', 'a workload ID names its trust domain'),
  tdOk('1.2.3.4', '1.2.3.4', 'IPv4-looking name'),
  tdOk('a_b-c.d', 'a_b-c.d', 'underscore and dash'),
  tdOk('.', '.', 'single dot'),
  tdOk('..', '..', 'two dots'),
  tdOk('-', '-', 'single dash'),
  tdOk('xn--bcher-kva.example', 'xn--bcher-kva.example', 'punycode'),
  tdOk('a'.repeat(255), 'a'.repeat(255), 'exactly 255 bytes'),
  tdOk(SCHEME + 'a'.repeat(255), 'a'.repeat(255), 'trust domain ID of a 255-byte name'),
  tdBad('', EMPTY, 'empty string'),
  tdBad('Example.org', TD_CHAR, 'uppercase'),
  tdBad('example.org:443', TD_CHAR, 'port'),
  tdBad('user@example.org', TD_CHAR, 'userinfo'),
  tdBad('exa mple.org', TD_CHAR, 'space'),
  tdBad('example.org\n', TD_CHAR, 'trailing newline'),
  tdBad('\texample.org', TD_CHAR, 'leading tab'),
  tdBad('example.org\u0000', TD_CHAR, 'trailing NUL'),
  tdBad('example.org/', TD_CHAR, 'trailing slash on a bare name'),
  tdBad('example.org/x', TD_CHAR, 'path on a bare name'),
  tdBad('%65xample.org', TD_CHAR, 'percent-encoded letter'),
  tdBad('bücher.example', TD_CHAR, 'IDN in Unicode form'),
  tdBad('😀', TD_CHAR, 'emoji'),
  tdBad('[::1]', TD_CHAR, 'IPv6 literal'),
  tdBad('::1', TD_CHAR, 'bare IPv6-looking name'),
  tdBad('example.org?x', TD_CHAR, 'query'),
  tdBad('example.org#x', TD_CHAR, 'fragment'),
  tdBad('spiffe:/example.org', SCHEME_BAD, "one slash: ':/' makes it an ID, with a bad scheme"),
  tdBad('SPIFFE://example.org', SCHEME_BAD, 'uppercase scheme'),
  tdBad('https://example.org', SCHEME_BAD, 'https scheme'),
  tdBad('example.org:/x', SCHEME_BAD, "':/' inside a name"),
  tdBad('spiffe://', NO_TD, 'trust domain ID without a name'),
  tdBad('spiffe://example.org/', TRAILING, 'trust domain ID with a trailing slash'),
  tdBad('spiffe://example.org/..', DOT, 'SPIFFE ID with a dot segment'),
  tdBad('spiffe://example.org/%41', PATH_CHAR, 'SPIFFE ID with percent-encoding'),
  tdBad('spiffe://Example.org', TD_CHAR, 'trust domain ID with uppercase'),
  tdBad('spiffe://td:80', TD_CHAR, 'trust domain ID with a port'),
  tdTooLong('a'.repeat(256), 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG', '256 bytes'),
  tdTooLong(SCHEME + 'a'.repeat(256), 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG', 'trust domain ID of a 256-byte name'),
  tdTooLong('a'.repeat(5000), 'ERR_SPIFFE_ID_TRUST_DOMAIN_TOO_LONG', '5000 bytes'),
  tdTooLong(idOfLength('a'.repeat(250), 2049), 'ERR_SPIFFE_ID_TOO_LONG', 'SPIFFE ID over 2048 bytes in a valid trust domain'),
];
