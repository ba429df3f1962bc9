/**
 * @module agent/template-instances
 *
 * Entry templates on the agent (issue 11; registration/template). The server pushes a
 * template entry as it is stored (`spiffe://td/ns/{{k8s:ns}}`, selectors `k8s:ns:*`); when a
 * Workload API caller's attested selectors instantiate it, this module makes an *instance*:
 * an ordinary entry for the concrete ID, whose selectors are the template's with each
 * wildcard replaced by the caller's value, under an instance ID (`<entry ID>#<hash>`, `#`
 * being outside entry IDs' alphabet, so no stored entry can collide with one). The cache
 * (cache.ts) serves instances like any entry: signed ahead, rotated, matched by subset. Its
 * server calls name the template's entry ID, the concrete ID and the caller selectors the
 * values came from (`request`); the server re-derives and re-checks the ID itself
 * (server/template-identity).
 *
 * Threats it stops:
 * - a hostile selector value (`../x`, `a/b`, `%2e%2e`, uppercase, Unicode, empty, over-long)
 *   turning into a SPIFFE ID: `instantiateTemplate` refuses it; the caller gets no identity
 *   from that template and `refusals` says why (the Workload API error carries it);
 * - a caller with ambiguous selectors (two values for one wildcard) getting either ID;
 * - memory exhaustion by many distinct callers: at most `maxInstances` instances; beyond,
 *   new ones are refused (and said so) until templates change.
 */
import { createHash } from 'node:crypto';
import type { RegistrationEntry } from '../registration/entry.js';
import type { Selector } from '../registration/selector.js';
import { instantiateTemplate, isTemplateId, wildcardSlot } from '../registration/template.js';
import type { AgentLogger } from './logger.js';

/** Default bound on template instances held at once. */
export const DEFAULT_MAX_TEMPLATE_INSTANCES = 4096;
/** Selector sets whose refusal reasons are remembered (for Workload API errors). */
const MAX_REFUSAL_SETS = 1024;

interface Instance {
  readonly entry: RegistrationEntry;
  readonly templateId: string;
  readonly bindings: readonly Selector[];
}

/** What the agent sends the server for an instance's SVID. */
export interface InstanceRequest {
  readonly templateId: string;
  readonly spiffeId: string;
  readonly templateSelectors: readonly Selector[];
}

function setKey(selectors: readonly Selector[]): string {
  return JSON.stringify([...new Set(selectors.map((s) => `${s.type}:${s.value}`))].sort());
}

function instanceIdOf(templateId: string, spiffeId: string): string {
  return `${templateId}#${createHash('sha256').update(spiffeId).digest('hex').slice(0, 24)}`;
}

export class TemplateInstances {
  readonly #log: AgentLogger;
  readonly #max: number;
  #templates: readonly RegistrationEntry[] = [];
  readonly #instances = new Map<string, Instance>();
  readonly #refusals = new Map<string, string[]>();
  /** Selector sets already resolved against the current templates: a repeat call costs a lookup (and logs nothing again). */
  readonly #resolved = new Set<string>();

  constructor(cfg: { logger: AgentLogger; maxInstances?: number }) {
    this.#log = cfg.logger;
    this.#max = cfg.maxInstances ?? DEFAULT_MAX_TEMPLATE_INSTANCES;
  }

  /** True for an instance ID (not a stored entry's). */
  static isInstanceId(entryId: string): boolean {
    return entryId.includes('#');
  }

  /**
   * Takes an update's live entries: keeps its templates, re-derives every instance from its
   * (possibly changed) template and drops those whose template is gone or no longer yields
   * them. Returns the non-template entries.
   */
  setEntries(entries: readonly RegistrationEntry[]): RegistrationEntry[] {
    const templates = entries.filter((e) => isTemplateId(e.spiffeId));
    this.#templates = templates;
    this.#refusals.clear();
    this.#resolved.clear();
    const byId = new Map(templates.map((t) => [t.entryId, t]));
    const old = [...this.#instances.values()];
    this.#instances.clear();
    for (const i of old) {
      const t = byId.get(i.templateId);
      if (t === undefined) continue;
      const literal = t.selectors.filter((s) => wildcardSlot(s) === undefined);
      this.#instantiate(t, [...literal, ...i.bindings]);
    }
    return entries.filter((e) => !isTemplateId(e.spiffeId));
  }

  /** The instances held, as entries. */
  entries(): RegistrationEntry[] {
    return [...this.#instances.values()].map((i) => i.entry);
  }

  /** Number of template entries held (tests, metrics). */
  get templateCount(): number {
    return this.#templates.length;
  }

  /** Number of instances held (tests, metrics). */
  get size(): number {
    return this.#instances.size;
  }

  /**
   * Instantiates every template `selectors` match; true when a new instance was made (the
   * cache then takes the new entry set and starts an issuance pass).
   */
  resolve(selectors: readonly Selector[]): boolean {
    if (this.#templates.length === 0) return false;
    const key = setKey(selectors);
    if (this.#resolved.has(key)) return false;
    if (this.#resolved.size >= MAX_REFUSAL_SETS) this.#resolved.clear();
    this.#resolved.add(key);
    let added = false;
    const reasons: string[] = [];
    for (const t of this.#templates) {
      const r = this.#instantiate(t, selectors);
      if (r === 'added') added = true;
      else if (r !== undefined && r !== 'held') reasons.push(r);
    }
    if (reasons.length > 0) {
      if (this.#refusals.size >= MAX_REFUSAL_SETS && !this.#refusals.has(key)) {
        // Forgotten reasons must be found again: those sets are resolved anew.
        this.#refusals.clear();
        this.#resolved.clear();
        this.#resolved.add(key);
      }
      this.#refusals.set(key, reasons);
    } else this.#refusals.delete(key);
    return added;
  }

  /** Why templates the caller with `selectors` matches yield it no identity (empty: none refused). */
  refusals(selectors: readonly Selector[]): readonly string[] {
    return this.#refusals.get(setKey(selectors)) ?? [];
  }

  /** The server request for an instance ID; undefined for a stored entry's ID. */
  request(entryId: string): InstanceRequest | undefined {
    const i = this.#instances.get(entryId);
    return i === undefined ? undefined : { templateId: i.templateId, spiffeId: i.entry.spiffeId, templateSelectors: i.bindings };
  }

  /** 'added', 'held' (already there), a refusal reason, or undefined (no match). */
  #instantiate(t: RegistrationEntry, selectors: readonly Selector[]): 'added' | 'held' | string | undefined {
    const r = instantiateTemplate(t.spiffeId, t.selectors, selectors);
    if (r === undefined) return undefined;
    if ('problem' in r) {
      const reason = `entry template ${JSON.stringify(t.entryId)} (${t.spiffeId}) yields no SVID: ${r.problem}`;
      this.#log.warn({ entryId: t.entryId, template: t.spiffeId, problem: r.problem }, 'entry template yields no SVID for a caller');
      return reason;
    }
    const id = instanceIdOf(t.entryId, r.spiffeId);
    if (this.#instances.has(id)) return 'held';
    if (this.#instances.size >= this.#max) {
      this.#log.warn({ entryId: t.entryId, spiffeId: r.spiffeId, max: this.#max }, 'too many entry-template instances; not serving a new one');
      return `entry template ${JSON.stringify(t.entryId)} yields no SVID: this agent already serves ${this.#max} template instances, its limit`;
    }
    this.#instances.set(id, { entry: { ...t, entryId: id, spiffeId: r.spiffeId, selectors: r.selectors }, templateId: t.entryId, bindings: r.bindings });
    this.#log.info({ entryId: t.entryId, spiffeId: r.spiffeId }, 'entry template instantiated for a caller');
    return 'added';
  }
}
