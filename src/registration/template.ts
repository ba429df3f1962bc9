/**
 * @module registration/template
 *
 * Entry templates (issue 11): one entry whose SPIFFE ID holds placeholders,
 * `spiffe://example.org/ns/{{k8s:ns}}/sa/{{k8s:sa}}`, each backed by a wildcard selector of
 * the same type and key (`k8s:ns:*`, `k8s:sa:*`). A workload matches the entry when it has
 * the entry's other selectors and exactly one value for each wildcard; its SPIFFE ID is the
 * template with each placeholder replaced by that value.
 *
 * Threat it stops: a selector value smuggling a path into the SPIFFE ID (the
 * CVE-2021-27099 class: `../admin`, `a/b`, `%2e%2e`, a Unicode look-alike, an empty value
 * that collapses a segment). A value is substituted only when it is 1..`MAX_TEMPLATE_VALUE_LENGTH`
 * bytes of `[a-z0-9._-]`, not `.` or `..`; the result is then parsed as strictly as a
 * typed-in ID (SpiffeId.parseWorkload) and must stay in the template's trust domain. Nothing
 * is normalised: a value that breaks a rule yields no ID and a reason naming the rule.
 * Both ends run this code: the agent to pick the ID to ask for, the server to re-derive it
 * from the template and the values the agent sent (and to refuse anything else).
 *
 * Template rules (checked at `entry create`, `templateProblem`): placeholders
 * `{{type:key}}` only in the path, never in the trust domain; type `[a-z0-9_-]+`, key
 * `[A-Za-z0-9._:-]+`; at most `MAX_TEMPLATE_PLACEHOLDERS`; every placeholder backed by a
 * wildcard selector `type:key:*`, every wildcard selector used by a placeholder; `*` in a
 * selector of a template entry only as its whole last `:`-part; the literal parts, with
 * sample values, must form a valid workload SPIFFE ID. Entries without `{{` are not
 * templates and their selectors keep their literal meaning (`*` matches only `*`).
 */
import { SpiffeId } from '../spiffe/id.js';
import type { Selector } from './selector.js';

/** Most placeholders in one template. */
export const MAX_TEMPLATE_PLACEHOLDERS = 8;
/** Longest selector value substituted for one placeholder (bytes). */
export const MAX_TEMPLATE_VALUE_LENGTH = 255;

const PLACEHOLDER_RE = /\{\{([^{}]*)\}\}/g;
const PLACEHOLDER_BODY_RE = /^([a-z0-9_-]+):([A-Za-z0-9._:-]+)$/;
const VALUE_RE = /^[a-z0-9._-]+$/;
const SCHEME = 'spiffe://';

/** A placeholder's selector type and key: `{{k8s:ns}}` → { type: 'k8s', key: 'ns' }. */
export interface TemplateSlot {
  readonly type: string;
  readonly key: string;
}

/** True when `spiffeId` is a template (holds a `{{`). */
export function isTemplateId(spiffeId: string): boolean {
  return spiffeId.includes('{{');
}

/**
 * `template` with every placeholder replaced by a sample value (`x`): what its literal parts
 * look like as a SPIFFE ID (for checks of the fixed prefix, such as the reserved `/spire`).
 */
export function templateSample(template: string): string {
  return template.replace(PLACEHOLDER_RE, 'x');
}

/** The wildcard selector's slot (`k8s` + `ns:*` → k8s/ns), or undefined when it is not one. */
export function wildcardSlot(sel: Selector): TemplateSlot | undefined {
  if (!sel.value.endsWith(':*')) return undefined;
  const key = sel.value.slice(0, -2);
  return key === '' ? undefined : { type: sel.type, key };
}

function slotName(s: TemplateSlot): string {
  return `${s.type}:${s.key}`;
}

function shown(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}

/** The placeholders of a template, in order of appearance (repeats kept). Assumes templateProblem passed. */
export function templateSlots(template: string): TemplateSlot[] {
  const out: TemplateSlot[] = [];
  for (const m of template.matchAll(PLACEHOLDER_RE)) {
    const b = PLACEHOLDER_BODY_RE.exec(m[1] as string);
    if (b !== null) out.push({ type: b[1] as string, key: b[2] as string });
  }
  return out;
}

/**
 * Why `template` with these selectors is not an acceptable entry template, or undefined
 * when it is. Only for IDs `isTemplateId` says are templates.
 */
export function templateProblem(template: string, selectors: readonly Selector[]): string | undefined {
  if (!template.startsWith(SCHEME)) return "must start with 'spiffe://'";
  const rest = template.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const td = slash === -1 ? rest : rest.slice(0, slash);
  if (td.includes('{') || td.includes('}')) return 'has a placeholder in the trust domain; placeholders may only stand in the path';
  const slots: TemplateSlot[] = [];
  for (const m of template.matchAll(PLACEHOLDER_RE)) {
    const b = PLACEHOLDER_BODY_RE.exec(m[1] as string);
    if (b === null) return `has placeholder ${shown(m[0])}; a placeholder is {{type:key}} naming a wildcard selector, e.g. {{k8s:ns}} for k8s:ns:*`;
    slots.push({ type: b[1] as string, key: b[2] as string });
  }
  if (slots.length > MAX_TEMPLATE_PLACEHOLDERS) return `holds ${slots.length} placeholders; the limit is ${MAX_TEMPLATE_PLACEHOLDERS}`;
  const stripped = template.replace(PLACEHOLDER_RE, '');
  if (stripped.includes('{') || stripped.includes('}')) return "has an unbalanced '{{' or '}}'";
  const wild = new Map<string, TemplateSlot>();
  for (const s of selectors) {
    const w = wildcardSlot(s);
    const body = w === undefined ? s.value : w.key;
    if (body.includes('*')) return `selector ${shown(`${s.type}:${s.value}`)} has a wildcard in a non-final position; in a template entry '*' may only be a selector's whole last part (k8s:ns:*)`;
    if (w !== undefined) wild.set(slotName(w), w);
  }
  const used = new Set<string>();
  for (const s of slots) {
    if (!wild.has(slotName(s))) return `has placeholder {{${slotName(s)}}} with no wildcard selector ${slotName(s)}:* behind it`;
    used.add(slotName(s));
  }
  for (const name of wild.keys()) {
    if (!used.has(name)) return `has wildcard selector ${shown(`${name}:*`)} but no placeholder {{${name}}} uses it`;
  }
  // The literal parts must make a valid workload ID with any acceptable values.
  try {
    SpiffeId.parseWorkload(templateSample(template));
  } catch (err) {
    return `does not make a valid SPIFFE ID once its placeholders are filled in: ${(err as Error).message}`;
  }
  return undefined;
}

/** Why `value` may not be substituted into a SPIFFE ID path, or undefined when it may. */
export function templateValueProblem(value: string): string | undefined {
  if (value.length === 0) return 'is empty';
  if (value.length > MAX_TEMPLATE_VALUE_LENGTH || Buffer.byteLength(value, 'utf8') > MAX_TEMPLATE_VALUE_LENGTH) return `is longer than ${MAX_TEMPLATE_VALUE_LENGTH} bytes`;
  if (value === '.' || value === '..') return `is ${shown(value)}, a dot segment`;
  if (value.includes('/')) return "holds '/', which would add path segments";
  if (value.includes('%')) return "holds '%' (percent-encoding is not allowed in SPIFFE IDs)";
  if (/[A-Z]/.test(value)) return 'holds an uppercase letter (template values must be lowercase)';
  if (!VALUE_RE.test(value)) return "holds a character outside a-z, 0-9, '.', '_' and '-'";
  return undefined;
}

/** The outcome of instantiating a template for one caller. */
export type Instantiation =
  | { readonly spiffeId: string; readonly bindings: readonly Selector[]; readonly selectors: readonly Selector[] }
  | { readonly problem: string };

/**
 * The SPIFFE ID `template` (with `selectors`, the entry's) yields for a caller holding
 * `callerSelectors`, or `{ problem }` saying why it yields none. A caller lacking one of the
 * entry's literal selectors or any value for a wildcard simply does not match: undefined.
 * `bindings` are the caller's selectors the values came from (one per wildcard, what the
 * agent sends the server); `selectors` are the entry's with each wildcard replaced by its
 * binding (what a matching caller must hold).
 */
export function instantiateTemplate(template: string, selectors: readonly Selector[], callerSelectors: readonly Selector[]): Instantiation | undefined {
  const have = new Set(callerSelectors.map((s) => `${s.type}:${s.value}`));
  const values = new Map<string, string[]>();
  for (const s of selectors) {
    const w = wildcardSlot(s);
    if (w === undefined) {
      if (!have.has(`${s.type}:${s.value}`)) return undefined;
      continue;
    }
    const prefix = `${w.key}:`;
    const found = callerSelectors.filter((c) => c.type === w.type && c.value.startsWith(prefix)).map((c) => c.value.slice(prefix.length));
    if (found.length === 0) return undefined;
    values.set(slotName(w), [...new Set(found)]);
  }
  return fill(template, selectors, values);
}

function fill(template: string, selectors: readonly Selector[], values: ReadonlyMap<string, readonly string[]>): Instantiation {
  const chosen = new Map<string, string>();
  for (const [name, vs] of values) {
    if (vs.length > 1) return { problem: `the caller has ${vs.length} values for ${name} (${vs.slice(0, 4).map(shown).join(', ')}); a template needs exactly one` };
    const v = vs[0] as string;
    const p = templateValueProblem(v);
    if (p !== undefined) return { problem: `selector value ${shown(v)} for {{${name}}} ${p}` };
    chosen.set(name, v);
  }
  const id = template.replace(PLACEHOLDER_RE, (_m, body: string) => {
    const v = chosen.get(body);
    if (v === undefined) throw new TypeError(`template placeholder {{${body}}} has no value (templateProblem was not checked)`);
    return v;
  });
  let parsed: SpiffeId;
  try {
    parsed = SpiffeId.parseWorkload(id);
  } catch (err) {
    return { problem: `the instantiated ID ${shown(id)} is not a valid SPIFFE ID: ${(err as Error).message}` };
  }
  const td = template.slice(SCHEME.length).split('/', 1)[0];
  if (parsed.trustDomain.name !== td) return { problem: `the instantiated ID ${shown(id)} left the template's trust domain` };
  const bindings: Selector[] = [];
  const concrete = selectors.map((s) => {
    const w = wildcardSlot(s);
    if (w === undefined) return s;
    const b = { type: w.type, value: `${w.key}:${chosen.get(slotName(w)) as string}` };
    bindings.push(b);
    return b;
  });
  return { spiffeId: parsed.toString(), bindings, selectors: concrete };
}

/**
 * The server's check of an agent's request for a template entry: `bindings` (what the agent
 * sent) must hold exactly one selector per wildcard of the entry and nothing else; the ID
 * is re-derived from them and, when the agent named one, must equal `claimed`. Returns the
 * derived ID or `{ problem }`.
 */
export function verifyInstantiation(template: string, selectors: readonly Selector[], bindings: readonly Selector[], claimed?: string): { spiffeId: string } | { problem: string } {
  const wild = new Map<string, TemplateSlot>();
  for (const s of selectors) {
    const w = wildcardSlot(s);
    if (w !== undefined) wild.set(slotName(w), w);
  }
  const values = new Map<string, string[]>();
  for (const b of bindings) {
    // The key may itself hold ':' (k8s:pod-label:app): take the longest key that is a wildcard.
    let slot: TemplateSlot | undefined;
    let value = '';
    for (let j = b.value.lastIndexOf(':'); j > 0; j = b.value.lastIndexOf(':', j - 1)) {
      slot = wild.get(`${b.type}:${b.value.slice(0, j)}`);
      if (slot !== undefined) {
        value = b.value.slice(j + 1);
        break;
      }
    }
    if (slot === undefined) return { problem: `selector ${shown(`${b.type}:${b.value}`)} does not bind a wildcard selector of this entry` };
    const list = values.get(slotName(slot)) ?? [];
    list.push(value);
    values.set(slotName(slot), list);
  }
  for (const name of wild.keys()) if (!values.has(name)) return { problem: `no value was given for {{${name}}}` };
  const r = fill(template, selectors, values);
  if ('problem' in r) return r;
  if (claimed !== undefined && claimed !== '' && claimed !== r.spiffeId) return { problem: `the asked SPIFFE ID ${shown(claimed)} is not what the template yields for these values (${shown(r.spiffeId)})` };
  return { spiffeId: r.spiffeId };
}
