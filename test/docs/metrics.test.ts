/**
 * docs/metrics.md cannot drift from what the binaries expose.
 *
 * A real server (ServerRunner as `mayfly-server run` assembles it, its `/metrics` on
 * 127.0.0.1) and a real agent (MayflyAgent attested with a join token, serving a workload
 * over its Unix socket, its `/metrics` on 127.0.0.1) are scraped over HTTP after a few real
 * calls, and every metric each page declares (`# TYPE <name> <type>`) is compared with the
 * doc's tables (`| \`name\` | type | labels | meaning |`, under `## Server` and `## Agent`):
 * - a name exposed but not documented fails (a new metric needs its row);
 * - a name documented but not exposed fails (a removed or misspelt metric);
 * - a documented type that is not the exposed one fails;
 * - a label seen on a series that the row does not list fails.
 * Node's process metrics (prom-client's default set, whose names depend on the Node
 * version) are documented as families: a row whose name ends in `*` covers every exposed
 * name with that prefix, and must cover at least one.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MayflyAgent } from '../../src/agent/agent.js';
import { declaredMetrics } from '../../src/observability/testing.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../src/server/client.js';
import { resolveServerConfig } from '../../src/server/config.js';
import { createServerLogger } from '../../src/server/observability.js';
import { ServerRunner } from '../../src/server/runner.js';
import { Client, unary } from '../../src/workloadapi/testing.js';

const DOC = join(import.meta.dirname, '..', '..', 'docs', 'metrics.md');
const TD = 'example.org';

interface Row {
  name: string;
  family: boolean;
  type: string;
  labels: string[];
}

function docRows(md: string): { server: Row[]; agent: Row[] } {
  const out: { server: Row[]; agent: Row[] } = { server: [], agent: [] };
  let cur: Row[] | undefined;
  for (const line of md.split('\n')) {
    const h = /^## (.+)$/.exec(line);
    if (h) {
      cur = h[1] === 'Server' ? out.server : h[1] === 'Agent' ? out.agent : undefined;
      continue;
    }
    const m = /^\| `([a-z0-9_:*]+)` \| (\w+) \|([^|]*)\|/.exec(line);
    if (m === null || cur === undefined) continue;
    // Label names are the quoted words outside parentheses (which hold example values).
    const labels = [...m[3]!.replace(/\([^)]*\)/g, '').matchAll(/`([a-z_]+)`/g)].map((l) => l[1]!);
    cur.push({ name: m[1]!.replace(/\*$/, ''), family: m[1]!.endsWith('*'), type: m[2]!, labels });
  }
  return out;
}

/** Label names on the series of each metric (histogram `le` and the `_bucket/_sum/_count` suffixes folded into the metric). */
function seenLabels(text: string, declared: Map<string, string>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} \S+$/.exec(line);
    if (m === null) continue;
    let name = m[1]!;
    if (!declared.has(name)) name = name.replace(/_(bucket|sum|count)$/, '');
    const set = out.get(name) ?? new Set<string>();
    for (const kv of m[2]!.split(',')) {
      const k = kv.split('=')[0]!;
      if (k !== 'le' && k !== 'quantile') set.add(k);
    }
    out.set(name, set);
  }
  return out;
}

function compare(what: string, text: string, rows: Row[]): string[] {
  const problems: string[] = [];
  const declared = declaredMetrics(text);
  const exact = new Map(rows.filter((r) => !r.family).map((r) => [r.name, r]));
  const families = rows.filter((r) => r.family);
  for (const [name, type] of declared) {
    const row = exact.get(name);
    if (row === undefined) {
      if (!families.some((f) => name.startsWith(f.name))) problems.push(`${what} exposes ${name} (${type}), which docs/metrics.md does not list`);
      continue;
    }
    if (row.type !== type) problems.push(`${what}: ${name} is a ${type}, docs/metrics.md says ${row.type}`);
  }
  for (const name of exact.keys()) if (!declared.has(name)) problems.push(`docs/metrics.md lists ${name} under ${what}, which does not expose it`);
  for (const f of families) if (![...declared.keys()].some((n) => n.startsWith(f.name))) problems.push(`docs/metrics.md lists the family ${f.name}* under ${what}, which exposes none of it`);
  for (const [name, labels] of seenLabels(text, declared)) {
    const row = exact.get(name);
    if (row === undefined) continue;
    for (const l of labels) if (!row.labels.includes(l)) problems.push(`${what}: ${name} has label ${l}, which docs/metrics.md does not list`);
  }
  return problems;
}

describe('docs/metrics.md', () => {
  const root = mkdtempSync(join(tmpdir(), 'mayfly-metrics-doc-'));
  let runner: ServerRunner;
  let admin: ServerApiClients;
  let agent: MayflyAgent;

  beforeAll(async () => {
    const settings = resolveServerConfig(undefined, { dataDir: join(root, 'server'), socketPath: join(root, 'private', 'api.sock'), bindPort: 0, trustDomain: TD });
    settings.bindAddress = '127.0.0.1';
    settings.metrics = { enabled: true, host: '127.0.0.1', port: 0 };
    runner = new ServerRunner({ settings, logger: createServerLogger('error'), drainMs: 200 });
    await runner.start();
    admin = adminSocketClients(settings.socketPath);
    const token = await unaryCall<{ value: string }>(admin.Agent, 'CreateJoinToken', { ttl: 600 });
    const socketPath = join(root, 'wl', 'api.sock');
    agent = new MayflyAgent({
      serverAddress: `127.0.0.1:${runner.server!.port}`,
      trustDomain: TD,
      dataDir: join(root, 'agent'),
      socketPath,
      joinToken: token.value,
      insecureBootstrap: true,
      http: { metrics: { host: '127.0.0.1', port: 0 } },
    });
    await agent.start();
    await agent.whenReady(20_000);
    await unaryCall(admin.Entry, 'BatchCreateEntry', {
      entries: [{ spiffe_id: `spiffe://${TD}/doc`, parent_id: agent.agentSvid?.spiffeId, selectors: [{ type: 'unix', value: `uid:${process.getuid?.() ?? 0}` }] }],
    });
    const wl = new Client(`unix://${socketPath}`, grpc.credentials.createInsecure());
    try {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const r = await unary<{ svids: unknown[] }>(wl, 'FetchJWTSVID', { audience: ['doc'] }).catch(() => ({ svids: [] }));
        if (r.svids.length > 0 || Date.now() > deadline) break;
        await new Promise((res) => setTimeout(res, 50));
      }
    } finally {
      wl.close();
    }
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    admin?.close();
    await runner?.stop();
    rmSync(root, { recursive: true, force: true });
  }, 60_000);

  it('lists exactly the metrics a running server and agent expose, with their types and labels', async () => {
    const rows = docRows(readFileSync(DOC, 'utf8'));
    expect(rows.server.length).toBeGreaterThan(0);
    expect(rows.agent.length).toBeGreaterThan(0);
    const serverText = await (await fetch(`http://127.0.0.1:${runner.httpPorts[0]}/metrics`)).text();
    const agentText = await (await fetch(`http://127.0.0.1:${agent.httpPorts[0]}/metrics`)).text();
    expect([...compare('the server', serverText, rows.server), ...compare('the agent', agentText, rows.agent)]).toEqual([]);
  });

  it('fails on a metric the doc does not list, and on a row nothing exposes', () => {
    const page = '# HELP mayfly_x_total x\n# TYPE mayfly_x_total counter\nmayfly_x_total{a="1"} 1\n';
    expect(compare('s', page, [])).toEqual(['s exposes mayfly_x_total (counter), which docs/metrics.md does not list']);
    expect(compare('s', page, [{ name: 'mayfly_x_total', family: false, type: 'counter', labels: [] }])).toEqual(['s: mayfly_x_total has label a, which docs/metrics.md does not list']);
    expect(compare('s', '', [{ name: 'mayfly_y', family: false, type: 'gauge', labels: [] }])).toEqual(['docs/metrics.md lists mayfly_y under s, which does not expose it']);
  });
});
