/**
 * @module examples/mcp/example
 *
 * Puts the example together: the test issuer, Mayfly (server with the delegation block,
 * agent, entries), the workloads' SVIDs from the Workload API, and the MCP server with its
 * per-tool policy. `npm run demo:agents` (examples/mcp/demo.ts) and
 * test/delegation/mcp.e2e.test.ts both start it with `startAgentsExample`.
 */
import { createServer } from 'node:net';
// In your project: import { ... } from 'mayfly/sdk'
import { JwtSource, X509Source, type CallDecisionRecord, type CallRule } from '../../src/sdk/index.js';
import { createTestIssuer, type TestIssuer, type TestUser } from './issuer.js';
import { startMayflyForExample, type MayflyForExample } from './mayfly.js';
import { startToolServer, type TokenRefusalRecord, type ToolServer } from './mcp-server.js';

export const TRUST_DOMAIN = 'example.org';
export const MCP_SERVER = `spiffe://${TRUST_DOMAIN}/mcp/tools`;
export const ASSISTANT = `spiffe://${TRUST_DOMAIN}/agent/assistant`;
export const REPORTER = `spiffe://${TRUST_DOMAIN}/agent/reporter`;
/** A workload of the trust domain that no delegation rule names. */
export const INTRUDER = `spiffe://${TRUST_DOMAIN}/intruder`;
/** Another service the policy lets agents reach (to show a token for it is refused by the MCP server). */
export const OTHER_SERVICE = 'https://reports.example.org/api';

export const USERS = {
  alice: { sub: 'alice', groups: ['staff'], roles: ['engineer'] },
  bob: { sub: 'bob', groups: ['staff'], roles: ['viewer'] },
} as const satisfies Record<string, TestUser>;

/** The MCP server's per-call policy: first match decides, default deny. */
export const TOOL_RULES: readonly CallRule[] = [
  { id: 'assistant-engineers-read', effect: 'allow', agents: [ASSISTANT], roles: ['engineer', 'admin'], tools: ['read_file', 'search'] },
  { id: 'assistant-admins-deploy', effect: 'allow', agents: [ASSISTANT], roles: ['admin'], tools: ['deploy'] },
  { id: 'reporter-for-bob-search', effect: 'allow', agents: [REPORTER], users: ['bob'], tools: ['search'] },
];

/** server.delegation.rules: which agents may act for which users, toward which audiences. */
export const delegationRules = (resource: string): string =>
  `{ agents = ["spiffe://${TRUST_DOMAIN}/agent/*"], groups = ["staff"], audiences = ["${resource}", "${OTHER_SERVICE}"], scopes = ["tools.read", "tools.write"] }`;

export interface AgentsExample {
  readonly mayfly: MayflyForExample;
  readonly issuer: TestIssuer;
  readonly toolServer: ToolServer;
  /** The MCP server's decision records (token refusals and per-call decisions). */
  readonly decisions: readonly (CallDecisionRecord | TokenRefusalRecord)[];
  /** The X509Source of a workload by hint: mcp, assistant, reporter, intruder. */
  source(hint: 'mcp' | 'assistant' | 'reporter' | 'intruder'): X509Source;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

/** An X509Source serving the SVID with `hint`, once the agent has it (bounded wait). */
async function sourceFor(socketPath: string, hint: string): Promise<X509Source> {
  const source = await X509Source.create({
    socketPath,
    timeoutMs: 20_000,
    picker: (svids) => {
      const s = svids.find((v) => v.hint === hint);
      if (s === undefined) throw new Error(`the agent serves no SVID with hint ${hint} (yet)`);
      return s;
    },
  });
  for (let i = 0; ; i++) {
    if (source.getX509Context().svids.some((v) => v.hint === hint)) return source;
    if (i >= 200) {
      source.close();
      throw new Error(`the agent served no SVID with hint ${hint} within 20 s`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startAgentsExample(log: (r: CallDecisionRecord | TokenRefusalRecord) => void = () => undefined): Promise<AgentsExample> {
  const cleanups: Array<() => Promise<void> | void> = [];
  const stop = async (): Promise<void> => {
    for (const c of cleanups.splice(0)) {
      try {
        await c();
      } catch {
        // best effort
      }
    }
  };
  try {
    const issuer = createTestIssuer();
    const port = await freePort();
    const resource = `https://127.0.0.1:${port}/mcp`;
    const mayfly = await startMayflyForExample({
      trustDomain: TRUST_DOMAIN,
      upstream: issuer,
      rulesHcl: delegationRules(resource),
      workloads: { '/mcp/tools': 'mcp', '/agent/assistant': 'assistant', '/agent/reporter': 'reporter', '/intruder': 'intruder' },
    });
    cleanups.unshift(() => mayfly.stop());
    const sources = new Map<string, X509Source>();
    for (const hint of ['mcp', 'assistant', 'reporter', 'intruder']) {
      const s = await sourceFor(mayfly.socketPath, hint);
      sources.set(hint, s);
      cleanups.unshift(() => s.close());
    }
    const jwt = await JwtSource.create({ socketPath: mayfly.socketPath, timeoutMs: 20_000 });
    cleanups.unshift(() => jwt.close());
    const decisions: (CallDecisionRecord | TokenRefusalRecord)[] = [];
    const toolServer = await startToolServer({
      source: sources.get('mcp') as X509Source,
      bundleSource: jwt,
      trustDomain: TRUST_DOMAIN,
      issuer: mayfly.issuer,
      port,
      rules: TOOL_RULES,
      log: (r) => {
        decisions.push(r);
        log(r);
      },
    });
    cleanups.unshift(() => toolServer.close());
    return { mayfly, issuer, toolServer, decisions, source: (hint) => sources.get(hint) as X509Source, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
