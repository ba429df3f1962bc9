/**
 * @module server/console/pages
 *
 * The console's pages, server-rendered HTML over a `ConsoleSource` (server/console/source):
 * overview (trust domain, CA authorities), entries (filters and paging by query
 * parameters), inventory findings, agents, revocations and the audit ledger's head. Every
 * value goes through server/console/html; there is no script, and the one stylesheet is
 * inline and allowed by its hash in the CSP (server/console/listener).
 */
import { decodeRecordBody } from '../../audit/record.js';
import type { ListEntriesQuery } from '../../datastore/datastore.js';
import { formatSelector, parseSelector } from '../../registration/selector.js';
import { html, type SafeHtml } from './html.js';
import type { ConsoleSource } from './source.js';

export const STYLESHEET =
  'body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24}header{background:#243447;color:#fff;padding:.6em 1em}' +
  'header a{color:#cfe3ff;margin-right:1em}main{padding:1em}table{border-collapse:collapse;width:100%;margin:.5em 0}' +
  'th,td{border:1px solid #d0d7de;padding:.25em .5em;text-align:left;vertical-align:top;font-size:13px}th{background:#f3f5f7}' +
  'code{font:12px ui-monospace,monospace;word-break:break-all}.bad{color:#b42318}.ok{color:#067647}form.filters input{margin-right:.5em}' +
  '.pager{margin:.5em 0}';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

/** A request the page cannot answer (bad filter): 400 with the message. */
export class BadRequest extends Error {}

const NAV: readonly [string, string][] = [
  ['/', 'Overview'],
  ['/entries', 'Entries'],
  ['/inventory', 'Inventory'],
  ['/agents', 'Agents'],
  ['/revocations', 'Revocations'],
  ['/audit', 'Audit ledger'],
];

export function layout(title: string, body: SafeHtml, trustDomain = ''): SafeHtml {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title} · Mayfly console</title><style>${STYLESHEET}</style></head>
<body><header><strong>Mayfly</strong> ${trustDomain} · ${NAV.map(([href, label]) => html`<a href="${href}">${label}</a>`)}</header>
<main><h1>${title}</h1>${body}</main></body></html>`;
}

const iso = (unixSeconds: number): string => (unixSeconds === 0 ? '—' : new Date(unixSeconds * 1000).toISOString().replace('.000Z', 'Z'));

function pageSize(q: URLSearchParams): number {
  const raw = q.get('page_size');
  if (raw === null || raw === '') return DEFAULT_PAGE_SIZE;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) throw new BadRequest(`page_size must be an integer 1..${MAX_PAGE_SIZE}`);
  return n;
}

function offsetOf(q: URLSearchParams): number {
  const raw = q.get('offset');
  if (raw === null || raw === '') return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new BadRequest('offset must be a non-negative integer');
  return n;
}

function link(path: string, q: URLSearchParams, set: Record<string, string>): string {
  const next = new URLSearchParams(q);
  for (const [k, v] of Object.entries(set)) next.set(k, v);
  return `${path}?${next.toString()}`;
}

/** Offset paging over an in-memory list. */
function slice<T>(path: string, q: URLSearchParams, all: readonly T[]): { items: readonly T[]; pager: SafeHtml } {
  const size = pageSize(q);
  const offset = offsetOf(q);
  const items = all.slice(offset, offset + size);
  const prev = offset > 0 ? html`<a href="${link(path, q, { offset: String(Math.max(0, offset - size)) })}" rel="prev">previous</a> ` : '';
  const next = offset + size < all.length ? html`<a href="${link(path, q, { offset: String(offset + size) })}" rel="next">next page</a>` : '';
  const shown = all.length === 0 ? 'none' : `${offset + 1}–${offset + items.length} of ${all.length}`;
  return { items, pager: html`<p class="pager">${shown} ${prev}${next}</p>` };
}

export async function overviewPage(src: ConsoleSource): Promise<SafeHtml> {
  const [entries, agents, head] = await Promise.all([src.store.countEntries(), src.store.countAgents(), src.auditEnabled ? src.store.lastAuditRecord() : undefined]);
  const nowMs = src.now().getTime();
  const rows = (['x509', 'jwt'] as const).flatMap((kind) =>
    src.ca.authorityState(kind).all.map(
      (a) => html`<tr><td>${kind === 'x509' ? 'X.509' : 'JWT'}</td><td><code>${a.id}</code></td><td>${a.status}${a.tainted ? html` <span class="bad">tainted</span>` : ''}</td><td>${a.notBefore.toISOString()}</td><td class="${a.notAfter.getTime() <= nowMs ? 'bad' : ''}">${a.notAfter.toISOString()}</td><td>${a.upstreamAuthorityId ?? 'self-signed'}</td></tr>`,
    ),
  );
  const body = html`<table class="facts"><tr><th>Trust domain</th><td id="trust-domain">${src.ca.trustDomain.name}</td></tr>
<tr><th>Entries</th><td>${entries}</td></tr><tr><th>Agents</th><td>${agents}</td></tr>
<tr><th>Audit ledger head</th><td>${head === undefined ? (src.auditEnabled ? 'empty' : 'audit ledger off') : html`seq ${head.seq}, <code>${head.hash}</code>`}</td></tr></table>
<h2>CA authorities</h2><table id="authorities"><tr><th>Kind</th><th>Authority ID</th><th>State</th><th>Not before</th><th>Expires</th><th>Upstream</th></tr>${rows}</table>`;
  return layout('Overview', body, src.ca.trustDomain.name);
}

function entryQuery(q: URLSearchParams): ListEntriesQuery {
  const out: ListEntriesQuery = {};
  const owner = q.get('owner');
  if (owner !== null && owner !== '') out.byOwner = owner;
  const sid = q.get('spiffe_id');
  if (sid !== null && sid !== '') out.bySpiffeId = sid;
  const parent = q.get('parent_id');
  if (parent !== null && parent !== '') out.byParentId = parent;
  const labels: Record<string, string> = {};
  for (const l of q.getAll('label')) {
    if (l === '') continue;
    const eq = l.indexOf('=');
    if (eq <= 0) throw new BadRequest(`label filter must be key=value; got ${l}`);
    labels[l.slice(0, eq)] = l.slice(eq + 1);
  }
  if (Object.keys(labels).length > 0) out.byLabels = labels;
  const selectors = q.getAll('selector').filter((s) => s !== '');
  if (selectors.length > 0) {
    try {
      out.bySelectors = { selectors: selectors.map((s) => parseSelector(s)), match: 'superset' };
    } catch (err) {
      throw new BadRequest(`selector filter: ${(err as Error).message}`);
    }
  }
  return out;
}

export async function entriesPage(src: ConsoleSource, q: URLSearchParams): Promise<SafeHtml> {
  const query = entryQuery(q);
  const size = pageSize(q);
  const token = q.get('page_token') ?? '';
  const [page, usage] = await Promise.all([src.store.listEntries({ ...query, pageSize: size, ...(token !== '' ? { pageToken: token } : {}) }), src.store.listEntryUsage()]);
  const used = new Map(usage.map((u) => [u.entryId, u]));
  const rows = page.items.map((e) => {
    const u = used.get(e.entryId);
    const last = Math.max(u?.lastIssuedAt ?? 0, u?.lastDeliveredAt ?? 0);
    return html`<tr class="entry"><td><code>${e.entryId}</code></td><td class="spiffe-id"><code>${e.spiffeId}</code></td><td><code>${e.parentId}</code></td>
<td class="selectors">${e.selectors.map((s) => html`<code>${formatSelector(s)}</code><br>`)}</td><td class="owner">${e.owner === '' ? html`<span class="bad">none</span>` : e.owner}</td>
<td class="labels">${Object.entries(e.labels).map(([k, v]) => html`<code>${k}=${v}</code><br>`)}</td><td class="purpose">${e.purpose}</td><td class="hint">${e.hint}</td>
<td>${e.admin ? 'admin ' : ''}${e.downstream ? 'downstream' : ''}</td><td>${last === 0 ? 'never' : iso(last)}${u !== undefined ? html`<br>${u.issuanceCount} issued` : ''}</td></tr>`;
  });
  const v = (k: string): string => q.get(k) ?? '';
  const filters = html`<form class="filters" method="get" action="/entries">
<label>Owner <input name="owner" value="${v('owner')}"></label><label>Label <input name="label" placeholder="k=v" value="${q.getAll('label')[0] ?? ''}"></label>
<label>Selector <input name="selector" placeholder="type:value" value="${q.getAll('selector')[0] ?? ''}"></label><label>SPIFFE ID <input name="spiffe_id" value="${v('spiffe_id')}"></label>
<label>Parent ID <input name="parent_id" value="${v('parent_id')}"></label><button type="submit">Filter</button></form>`;
  const next = page.nextPageToken !== '' ? html`<a href="${link('/entries', q, { page_token: page.nextPageToken })}" rel="next">next page</a>` : '';
  const first = token !== '' ? html`<a href="${link('/entries', q, { page_token: '' })}">first page</a> ` : '';
  const body = html`${filters}<p class="pager">${page.items.length} shown ${first}${next}</p>
<table id="entries"><tr><th>Entry ID</th><th>SPIFFE ID</th><th>Parent</th><th>Selectors</th><th>Owner</th><th>Labels</th><th>Purpose</th><th>Hint</th><th>Flags</th><th>Last use</th></tr>${rows}</table>
<p class="pager">${first}${next}</p>`;
  return layout('Entries', body, src.ca.trustDomain.name);
}

export async function inventoryPage(src: ConsoleSource, q: URLSearchParams): Promise<SafeHtml> {
  const r = await src.inventory();
  const kind = q.get('kind') ?? '';
  const counts = new Map<string, number>();
  for (const f of r.entries) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1);
  const owner = q.get('owner') ?? '';
  const shown = r.entries.filter((f) => (kind === '' || f.kind === kind) && (owner === '' || f.owner === owner));
  const { items, pager } = slice('/inventory', q, shown);
  const kinds = [...counts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, n]) => html`<li><a href="${link('/inventory', new URLSearchParams(), { kind: k })}">${k}</a>: <span class="count" id="count-${k}">${n}</span></li>`);
  const rows = items.map((f) => html`<tr class="finding"><td>${f.kind}</td><td><code>${f.entryId}</code></td><td><code>${f.spiffeId}</code></td><td class="owner">${f.owner === '' ? html`<span class="bad">none</span>` : f.owner}</td><td>${f.detail}</td><td>${f.action}</td></tr>`);
  const agents = r.agents.slice(0, MAX_PAGE_SIZE).map((a) => html`<tr class="agent-finding"><td>${a.kind}</td><td><code>${a.agentId}</code></td><td>${a.detail}</td><td>${a.action}</td></tr>`);
  const body = html`<p>${r.entryCount} entries, ${r.agentCount} agents, ${r.entries.length} entry findings, ${r.agents.length} agent findings at ${iso(r.generatedAt)}.</p>
<ul id="kinds">${kinds}</ul><form class="filters" method="get" action="/inventory"><label>Kind <input name="kind" value="${kind}"></label><label>Owner <input name="owner" value="${owner}"></label><button type="submit">Filter</button> <a href="/inventory">all findings</a></form>
${pager}<table id="findings"><tr><th>Finding</th><th>Entry</th><th>SPIFFE ID</th><th>Owner</th><th>Detail</th><th>Suggested action</th></tr>${rows}</table>${pager}
<h2>Agents</h2><table id="agent-findings"><tr><th>Finding</th><th>Agent</th><th>Detail</th><th>Suggested action</th></tr>${agents}</table>`;
  return layout('Inventory', body, src.ca.trustDomain.name);
}

export async function agentsPage(src: ConsoleSource, q: URLSearchParams): Promise<SafeHtml> {
  const token = q.get('page_token') ?? '';
  const page = await src.store.listAgents({ pageSize: pageSize(q), ...(token !== '' ? { pageToken: token } : {}) });
  const rows = page.items.map(
    (a) => html`<tr class="agent"><td><code>${a.spiffeId}</code></td><td>${a.attestationType}</td><td>${a.selectors.map((s) => html`<code>${formatSelector(s)}</code><br>`)}</td><td>${a.banned ? html`<span class="bad">banned</span>` : 'attested'}</td><td>${iso(a.certNotAfter)}</td><td>${iso(a.updatedAt)}</td></tr>`,
  );
  const next = page.nextPageToken !== '' ? html`<a href="${link('/agents', q, { page_token: page.nextPageToken })}" rel="next">next page</a>` : '';
  const body = html`<table id="agents"><tr><th>Agent</th><th>Attestation</th><th>Node selectors</th><th>State</th><th>SVID expires</th><th>Last seen</th></tr>${rows}</table><p class="pager">${next}</p>`;
  return layout('Agents', body, src.ca.trustDomain.name);
}

export async function revocationsPage(src: ConsoleSource, q: URLSearchParams): Promise<SafeHtml> {
  const all = await src.store.listRevokedX509Svids();
  const { items, pager } = slice('/revocations', q, all);
  const rows = items.map((r) => html`<tr class="revocation"><td><code>${r.serialHex}</code></td><td><code>${r.spiffeId}</code></td><td><code>${r.entryId}</code></td><td>${r.reason}</td><td>${iso(r.revokedAt)}</td><td>${iso(r.notAfter)}</td></tr>`);
  const body = html`${pager}<table id="revocations"><tr><th>Serial</th><th>SPIFFE ID</th><th>Entry</th><th>Reason</th><th>Revoked</th><th>Expires</th></tr>${rows}</table>`;
  return layout('Revocations', body, src.ca.trustDomain.name);
}

const RECENT = 20;

export async function auditPage(src: ConsoleSource): Promise<SafeHtml> {
  if (!src.auditEnabled) return layout('Audit ledger', html`<p>The audit ledger is off (server.conf <code>audit</code>).</p>`, src.ca.trustDomain.name);
  const head = await src.store.lastAuditRecord();
  const recent = head === undefined ? [] : await src.store.listAuditRecords({ afterSeq: Math.max(0, head.seq - RECENT), limit: RECENT });
  const rows = [...recent].reverse().map((r) => {
    const b = decodeRecordBody(r.body);
    return html`<tr class="record"><td>${r.seq}</td><td>${b?.kind ?? 'undecodable'}</td><td>${b === undefined ? '' : new Date(b.time).toISOString()}</td><td>${b === undefined ? '' : `${b.actor.kind} ${b.actor.id ?? ''}`}</td><td><code>${r.hash}</code></td></tr>`;
  });
  const body = html`<table class="facts"><tr><th>Head</th><td id="ledger-head">${head === undefined ? 'empty' : html`seq ${head.seq}, hash <code>${head.hash}</code>`}</td></tr></table>
<h2>Latest records</h2><table id="audit"><tr><th>Seq</th><th>Kind</th><th>Time</th><th>Actor</th><th>Hash</th></tr>${rows}</table>`;
  return layout('Audit ledger', body, src.ca.trustDomain.name);
}
