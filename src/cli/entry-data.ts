/**
 * @module cli/entry-data
 *
 * The JSON files `entry create|update -data` and `entry delete -file` read.
 *
 * `-data` holds `{"entries": [ ... ]}` in either of the two shapes an operator has at hand:
 * - SPIRE's file format (`common.RegistrationEntries`): IDs as strings, `entry_id`,
 *   `entryExpiry`, numbers as numbers;
 * - what `entry show -output json` prints (spire-api-sdk `types.Entry` as protojson): IDs
 *   as `{"trust_domain", "path"}`, `id`, `expires_at`, `revision_number`, int64s as
 *   strings; `created_at` is read and ignored.
 * So `entry show -output json | entry create -data -` round-trips. lowerCamel JSON names
 * are accepted too (protojson reads both). An unknown field is refused, naming it (SPIRE
 * silently ignores it, which turns a typo into a missing setting).
 *
 * `-file` holds SPIRE's `BatchDeleteEntryRequest`: `{"ids": ["...", ...]}`.
 */
import type { WireEntry } from '../server/messages.js';
import { CliUsageError } from './flags.js';
import { spiffeIdArg, trustDomainArg } from './server-common.js';
import { spiffeIdString, type SpireSpiffeId } from './spire-json.js';

export type EntryRequest = Partial<WireEntry>;

type Field = keyof WireEntry | 'store_svid' | 'ignored';

const DATA_KEYS: Record<string, Field> = {
  entry_id: 'id', entryId: 'id', id: 'id',
  spiffe_id: 'spiffe_id', spiffeId: 'spiffe_id',
  parent_id: 'parent_id', parentId: 'parent_id',
  selectors: 'selectors',
  x509_svid_ttl: 'x509_svid_ttl', x509SvidTtl: 'x509_svid_ttl', ttl: 'x509_svid_ttl',
  jwt_svid_ttl: 'jwt_svid_ttl', jwtSvidTtl: 'jwt_svid_ttl',
  dns_names: 'dns_names', dnsNames: 'dns_names',
  federates_with: 'federates_with', federatesWith: 'federates_with',
  admin: 'admin', downstream: 'downstream', hint: 'hint',
  entryExpiry: 'expires_at', entry_expiry: 'expires_at', expires_at: 'expires_at', expiresAt: 'expires_at',
  revision_number: 'revision', revisionNumber: 'revision', revision: 'revision',
  store_svid: 'store_svid', storeSvid: 'store_svid',
  created_at: 'ignored', createdAt: 'ignored',
  owner: 'owner', labels: 'labels', purpose: 'purpose',
};

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CliUsageError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function idValue(v: unknown, where: string): string {
  if (typeof v === 'string') return spiffeIdArg(v, where, { required: true }) as string;
  if (typeof v === 'object' && v !== null && typeof (v as SpireSpiffeId).trust_domain === 'string') {
    const o = v as SpireSpiffeId;
    return spiffeIdArg(spiffeIdString({ trust_domain: o.trust_domain, path: typeof o.path === 'string' ? o.path : '' }), where, { required: true }) as string;
  }
  throw new CliUsageError(`${where} must be a SPIFFE ID string or {"trust_domain", "path"}`);
}

function intValue(v: unknown, where: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && /^\d{1,15}$/.test(v)) return Number(v);
  throw new CliUsageError(`${where} must be a non-negative integer (a number or a decimal string); got ${JSON.stringify(v)}`);
}

function stringList(v: unknown, where: string): string[] {
  if (v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new CliUsageError(`${where} must be a list of strings`);
  return v as string[];
}

function boolValue(v: unknown, where: string): boolean {
  if (typeof v !== 'boolean') throw new CliUsageError(`${where} must be true or false`);
  return v;
}

function entryFromJson(raw: unknown, where: string): EntryRequest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CliUsageError(`${where} must be an object`);
  const e: EntryRequest = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    const field = DATA_KEYS[k];
    const at = `${where}.${k}`;
    switch (field) {
      case undefined:
        throw new CliUsageError(`${where} has unknown field ${JSON.stringify(k)}`);
      case 'ignored':
        break;
      case 'store_svid':
        if (boolValue(v, at)) throw new CliUsageError(`${at} is true, but Mayfly has no SVIDStore plugins to store SVIDs through: remove it`);
        break;
      case 'labels': {
        if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
          throw new CliUsageError(`${at} must be an object of "key": "value" strings`);
        }
        e.labels = { ...(v as Record<string, string>) };
        break;
      }
      case 'id':
      case 'hint':
      case 'owner':
      case 'purpose':
        if (typeof v !== 'string') throw new CliUsageError(`${at} must be a string`);
        e[field] = v;
        break;
      case 'spiffe_id':
      case 'parent_id':
        e[field] = idValue(v, at);
        break;
      case 'x509_svid_ttl':
      case 'jwt_svid_ttl':
      case 'expires_at':
      case 'revision':
      case 'created_at':
        e[field] = intValue(v, at);
        break;
      case 'dns_names':
        e.dns_names = stringList(v, at);
        break;
      case 'federates_with':
        e.federates_with = stringList(v, at).map((f, j) => trustDomainArg(f, `${at}[${j}]`));
        break;
      case 'admin':
      case 'downstream':
        e[field] = boolValue(v, at);
        break;
      case 'selectors': {
        if (!Array.isArray(v)) throw new CliUsageError(`${at} must be a list of {"type", "value"}`);
        e.selectors = v.map((s: unknown, j) => {
          const sel = s as { type?: unknown; value?: unknown } | null;
          if (typeof sel?.type !== 'string' || typeof sel.value !== 'string') throw new CliUsageError(`${at}[${j}] must be {"type": "...", "value": "..."}`);
          return { type: sel.type, value: sel.value };
        });
        break;
      }
    }
  }
  return e;
}

/** Entries from a `-data` document (`source` names the file for messages). */
export function entriesFromData(text: string, source: string): EntryRequest[] {
  const doc = parseJson(text, `-data ${source}`);
  const list = (doc as { entries?: unknown } | null)?.entries;
  if (!Array.isArray(list)) throw new CliUsageError(`-data ${source} must hold {"entries": [ ... ]}`);
  return list.map((raw, i) => entryFromJson(raw, `-data ${source}: entries[${i}]`));
}

/** Entry IDs from an `entry delete -file` document: `{"ids": [...]}`. */
export function idsFromDeleteFile(text: string, source: string): string[] {
  const doc = parseJson(text, `-file ${source}`);
  const ids = (doc as { ids?: unknown } | null)?.ids;
  if (!Array.isArray(ids) || ids.some((x) => typeof x !== 'string' || x === '')) throw new CliUsageError(`-file ${source} must hold {"ids": ["<entry id>", ...]}`);
  return ids as string[];
}
