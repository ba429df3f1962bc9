/**
 * @module registration/selector
 *
 * Selectors: `type:value` pairs that describe a workload or a node (`unix:uid:1000`,
 * `k8s:ns:prod`). As in SPIRE, the string form splits at the FIRST colon, so the type
 * never holds a colon and the value may (`unix:uid:1000` is type `unix`, value `uid:1000`).
 *
 * Threat: a selector that compares differently from how it reads. Control characters
 * (a NUL, a newline) could make two distinct selectors collide in a storage key or forge
 * a line in a log, and an oversized value could exhaust memory or storage. Every selector
 * is checked against these bounds and nothing is normalised: `Unix:uid:1000` is rejected,
 * never lowercased, so the selector an operator registers is byte-for-byte the one matched.
 *
 * Bounds: type `[a-z0-9_-]`, 1..64 bytes; value 1..1024 bytes of UTF-8, no control
 * characters (U+0000..U+001F, U+007F..U+009F).
 */
import { MayflyError } from '../spiffe/errors.js';
import type { RegistrationErrorCode } from './registration-error.js';

/** A selector: `type` (the attestor that produces it) and `value` (what it observed). */
export interface Selector {
  readonly type: string;
  readonly value: string;
}

/** The longest selector type accepted (bytes). */
export const MAX_SELECTOR_TYPE_LENGTH = 64;
/** The longest selector value accepted (bytes). */
export const MAX_SELECTOR_VALUE_LENGTH = 1024;

/** A selector that breaks one of the bounds above. */
export class SelectorError extends MayflyError<RegistrationErrorCode> {
  constructor(message: string) {
    super('ERR_SELECTOR_INVALID', message);
  }
}

const TYPE_RE = /^[a-z0-9_-]+$/;
// C0 controls, DEL and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
/** A UTF-16 surrogate without its pair: not encodable as UTF-8, so not storable faithfully. */
export const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function shown(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}

/** The reason `type` is not a valid selector type, or undefined when it is. */
export function selectorTypeProblem(type: unknown): string | undefined {
  if (typeof type !== 'string') return 'type must be a string';
  if (type.length === 0) return 'type is empty';
  if (type.length > MAX_SELECTOR_TYPE_LENGTH) return `type is ${type.length} bytes; the limit is ${MAX_SELECTOR_TYPE_LENGTH}`;
  if (!TYPE_RE.test(type)) return `type ${shown(type)} may only hold lowercase letters, digits, '_' and '-'`;
  return undefined;
}

/** The reason `value` is not a valid selector value, or undefined when it is. */
export function selectorValueProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'value must be a string';
  if (value.length === 0) return 'value is empty';
  // Cheap pre-check before counting UTF-8 bytes of a possibly huge string.
  if (value.length > MAX_SELECTOR_VALUE_LENGTH || Buffer.byteLength(value, 'utf8') > MAX_SELECTOR_VALUE_LENGTH) {
    return `value is longer than ${MAX_SELECTOR_VALUE_LENGTH} bytes`;
  }
  if (CONTROL_RE.test(value)) return `value ${shown(value)} holds a control character`;
  if (LONE_SURROGATE_RE.test(value)) return 'value holds an unpaired UTF-16 surrogate';
  return undefined;
}

/** Throws SelectorError unless `sel` is a valid selector object; returns it unchanged. */
export function validateSelector(sel: unknown): Selector {
  if (typeof sel !== 'object' || sel === null) throw new SelectorError('invalid selector: expected an object { type, value }');
  const { type, value } = sel as { type?: unknown; value?: unknown };
  const p = selectorTypeProblem(type) ?? selectorValueProblem(value);
  if (p !== undefined) throw new SelectorError(`invalid selector: ${p}`);
  return { type: type as string, value: value as string };
}

/** Parses `type:value`, splitting at the first colon. Throws SelectorError. */
export function parseSelector(text: string): Selector {
  if (typeof text !== 'string') throw new TypeError('selector must be a string');
  const colon = text.indexOf(':');
  if (colon === -1) throw new SelectorError(`invalid selector ${shown(text)}: expected "type:value" (e.g. "unix:uid:1000")`);
  return validateSelector({ type: text.slice(0, colon), value: text.slice(colon + 1) });
}

/** `type:value`. The inverse of parseSelector for valid selectors. */
export function formatSelector(sel: Selector): string {
  return `${sel.type}:${sel.value}`;
}

/** Canonical order: by type, then by value, comparing UTF-16 code units (stable everywhere). */
export function compareSelectors(a: Selector, b: Selector): number {
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.value !== b.value) return a.value < b.value ? -1 : 1;
  return 0;
}

/** A sorted copy; the input is left as it was. */
export function sortSelectors(selectors: readonly Selector[]): Selector[] {
  return [...selectors].sort(compareSelectors);
}

/**
 * True when every selector of the entry is among the caller's selectors (a subset test).
 * An agent or the server uses it to decide whether an entry applies to an attested
 * workload or node. An entry with no selectors matches nothing.
 */
export function entryMatchesSelectors(entrySelectors: readonly Selector[], callerSelectors: readonly Selector[]): boolean {
  if (entrySelectors.length === 0) return false;
  const have = new Set<string>();
  for (const s of callerSelectors) have.add(formatSelector(s));
  for (const s of entrySelectors) if (!have.has(formatSelector(s))) return false;
  return true;
}
