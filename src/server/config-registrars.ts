/**
 * @module server/config-registrars
 *
 * `server { registrars { … } }` (Mayfly's own; SPIRE's admin_ids are all-or-nothing):
 *
 *   registrars {
 *     registrar "spiffe://example.org/ci/team-a" {        # an admin entry's SPIFFE ID
 *       spiffe_id_prefixes = ["spiffe://example.org/team-a"]
 *       parent_ids         = ["spiffe://example.org/spire/agent/k8s_psat/cluster-a/*", "spiffe://example.org/nodes/a"]
 *       owners             = ["team-a"]
 *     }
 *   }
 *
 * All three lists are required and non-empty: a registrar block that forgot one must not
 * leave that dimension open. Prefixes are compared by whole path segments (a trailing `/` is
 * accepted and dropped); parent IDs are exact, or `<id>/*` for every ID below `<id>`.
 *
 * Threat: a scope wider than written, or one that grants the reserved namespace. Every
 * problem refuses the start (named by the registrar's label and the item's index): an ID
 * of another trust domain, a prefix that is the whole trust domain or lies in `/spire`, a
 * malformed ID or owner, `..`, `%`, empty segments, or duplicated registrars.
 */
import { checkKeys } from '../config/accessors.js';
import { hclLineOf, isHclObject, type HclObject, type HclValue } from '../config/hcl.js';
import { Problems } from '../config/problems.js';
import { ownerProblem } from '../registration/entry.js';
import { SpiffeId } from '../spiffe/id.js';
import type { RegistrarScope } from './registrar-scope.js';

const MAX_REGISTRARS = 1000;
const MAX_ITEMS = 256;

function inReserved(id: SpiffeId): boolean {
  return id.path === '/spire' || id.path.startsWith('/spire/');
}

function parseId(v: string, trustDomain: string, what: string, p: Problems): SpiffeId | undefined {
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(v);
  } catch (err) {
    p.add(`${what}: ${(err as Error).message}`);
    return undefined;
  }
  if (id.trustDomain.name !== trustDomain) {
    p.add(`${what}: ${v} is not in this server's trust domain ${trustDomain}`);
    return undefined;
  }
  return id;
}

function stringList(v: HclValue | undefined, what: string, p: Problems): string[] | undefined {
  if (v === undefined) {
    p.add(`${what} is required (a non-empty list): a registrar's scope names every dimension`);
    return undefined;
  }
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string')) {
    p.add(`${what} must be a non-empty list of strings`);
    return undefined;
  }
  if (v.length > MAX_ITEMS) {
    p.add(`${what} holds ${v.length} items; the limit is ${MAX_ITEMS}`);
    return undefined;
  }
  return v as string[];
}

function readPrefixes(v: HclValue | undefined, trustDomain: string, where: string, p: Problems): string[] {
  const what = `${where}.spiffe_id_prefixes`;
  const out: string[] = [];
  (stringList(v, what, p) ?? []).forEach((raw, i) => {
    const item = `${what}[${i}]`;
    // One trailing slash reads as "below this": the same as without it (segment-wise match).
    const text = raw.endsWith('/') && !raw.endsWith('//') ? raw.slice(0, -1) : raw;
    const id = parseId(text, trustDomain, item, p);
    if (id === undefined) return;
    if (id.path === '') p.add(`${item}: ${raw} is the whole trust domain, which is no scope; name a path such as spiffe://${trustDomain}/team-a`);
    else if (inReserved(id)) p.add(`${item}: ${raw} is in the reserved /spire namespace (the server's and agents' own identities), which no registrar may be given`);
    else out.push(id.toString());
  });
  return out;
}

function readParents(v: HclValue | undefined, trustDomain: string, where: string, p: Problems): string[] {
  const what = `${where}.parent_ids`;
  const out: string[] = [];
  (stringList(v, what, p) ?? []).forEach((raw, i) => {
    const item = `${what}[${i}]`;
    const wild = raw.endsWith('/*');
    const id = parseId(wild ? raw.slice(0, -2) : raw, trustDomain, item, p);
    if (id === undefined) return;
    if (wild && id.path === '') p.add(`${item}: ${raw} covers every ID of the trust domain, which is no scope; name a path such as spiffe://${trustDomain}/spire/agent/k8s_psat/cluster-a/*`);
    else out.push(wild ? `${id.toString()}/*` : id.toString());
  });
  return out;
}

function readOwners(v: HclValue | undefined, where: string, p: Problems): string[] {
  const what = `${where}.owners`;
  const out: string[] = [];
  (stringList(v, what, p) ?? []).forEach((o, i) => {
    const problem = ownerProblem(o);
    if (problem !== undefined) p.add(`${what}[${i}] ${problem}`);
    else out.push(o);
  });
  return out;
}

/** `server.registrars`, by registrar SPIFFE ID; undefined when absent. */
export function readRegistrarsBlock(srv: HclObject, trustDomain: string, p: Problems): Map<string, RegistrarScope> | undefined {
  const raw = srv.registrars;
  if (raw === undefined) return undefined;
  const r = Array.isArray(raw) && raw.length === 1 ? raw[0] : raw;
  if (!isHclObject(r)) {
    p.add('server.registrars must be a block of registrar "<admin SPIFFE ID>" { … } blocks');
    return undefined;
  }
  checkKeys(r, ['registrar'], 'server.registrars', p);
  const list = r.registrar;
  if (list === undefined) return new Map();
  if (!isHclObject(list)) {
    p.add('server.registrars.registrar must be labelled with the admin SPIFFE ID: registrar "spiffe://<td>/…" { … }');
    return undefined;
  }
  const labels = Object.keys(list);
  if (labels.length > MAX_REGISTRARS) {
    p.add(`server.registrars holds ${labels.length} registrars; the limit is ${MAX_REGISTRARS}`);
    return undefined;
  }
  const out = new Map<string, RegistrarScope>();
  for (const label of labels) {
    const where = `server.registrars.registrar.${label.slice(0, 300)}`;
    const body = list[label];
    const one = Array.isArray(body) && body.length === 1 ? body[0] : body;
    // Each problem of this registrar names the config line its block opens on (HCL files).
    const line = hclLineOf(one);
    const mine = new Problems();
    const scope = readRegistrar(label, where, one, trustDomain, mine);
    for (const m of mine.list) p.add(line === undefined ? m : `${m} (config line ${line})`);
    if (scope === undefined) continue;
    if (out.has(scope.registrar)) {
      p.add(`${where}: registrar ${scope.registrar} is configured twice${line === undefined ? '' : ` (config line ${line})`}`);
      continue;
    }
    out.set(scope.registrar, scope);
  }
  return out;
}

function readRegistrar(label: string, where: string, one: HclValue | undefined, trustDomain: string, p: Problems): RegistrarScope | undefined {
  if (!isHclObject(one)) {
    p.add(`${where} must be a block`);
    return undefined;
  }
  checkKeys(one, ['spiffe_id_prefixes', 'parent_ids', 'owners'], where, p);
  const id = parseId(label, trustDomain, where, p);
  if (id !== undefined && (id.path === '' || inReserved(id))) p.add(`${where}: a registrar is an admin workload's SPIFFE ID; ${label} is ${id.path === '' ? 'a trust domain ID' : 'in the reserved /spire namespace'}`);
  const spiffeIdPrefixes = readPrefixes(one.spiffe_id_prefixes, trustDomain, where, p);
  const parentIds = readParents(one.parent_ids, trustDomain, where, p);
  const owners = readOwners(one.owners, where, p);
  if (id === undefined) return undefined;
  return { registrar: id.toString(), spiffeIdPrefixes, parentIds, owners };
}
