/**
 * @module examples/mcp/demo
 *
 * `npm run demo:agents`: AI agents acting for users against an MCP server, end to end.
 *
 *   user token (test issuer, RS256) ─┐
 *   agent workload (Mayfly X509-SVID) ├─ RFC 8693 exchange over mTLS ─→ Mayfly server
 *                                     │    ← delegated JWT: sub=user, act.sub=agent, aud=MCP server, cnf=agent cert
 *                                     └─ MCP over Streamable HTTP + mTLS ─→ MCP server
 *                                          validateDelegatedToken (aud = itself, binding, actor = TLS peer)
 *                                          authorizeCall per tool (agent × user × role) → allow / deny, logged
 *
 * The scenarios: allowed for one user; refused for another user; refused for an agent not
 * allowed for that user; refused for a tool outside the user's role; and an agent no
 * delegation rule names, refused at the exchange.
 */
import { pathToFileURL } from 'node:url';
// In your project: import { ... } from 'mayfly/sdk'
import { TokenExchangeError, type CallDecisionRecord } from '../../src/sdk/index.js';
import { actForUser } from './agent-client.js';
import { MCP_SERVER, startAgentsExample, USERS, type AgentsExample } from './example.js';
import type { TokenRefusalRecord } from './mcp-server.js';

export interface ScenarioOutcome {
  readonly name: string;
  readonly agent: 'assistant' | 'reporter' | 'intruder';
  readonly user: keyof typeof USERS;
  readonly tool: string;
  /** `allowed`, `refused` (by the MCP server's policy) or `exchange refused: <oauth error>`. */
  readonly outcome: string;
  readonly text: string;
}

export const SCENARIOS: readonly { name: string; agent: ScenarioOutcome['agent']; user: keyof typeof USERS; tool: string; args: Record<string, unknown> }[] = [
  { name: 'allowed for one user', agent: 'assistant', user: 'alice', tool: 'read_file', args: { path: 'repo:README.md' } },
  { name: 'refused for another user', agent: 'assistant', user: 'bob', tool: 'read_file', args: { path: 'repo:README.md' } },
  { name: 'refused for an agent not allowed for that user', agent: 'reporter', user: 'alice', tool: 'search', args: { query: 'roadmap' } },
  { name: 'allowed: that agent for the user it serves', agent: 'reporter', user: 'bob', tool: 'search', args: { query: 'roadmap' } },
  { name: "refused for a tool outside the user's role", agent: 'assistant', user: 'alice', tool: 'deploy', args: { service: 'billing' } },
  { name: 'refused at the exchange: an agent no delegation rule names', agent: 'intruder', user: 'alice', tool: 'read_file', args: { path: 'repo:README.md' } },
];

/** Runs every scenario against a started example. */
export async function runScenarios(ex: AgentsExample, print: (line: string) => void): Promise<ScenarioOutcome[]> {
  const out: ScenarioOutcome[] = [];
  for (const s of SCENARIOS) {
    const userToken = await ex.issuer.userToken(USERS[s.user]);
    let outcome: string;
    let text: string;
    try {
      const session = await actForUser({ source: ex.source(s.agent), mcpServerId: MCP_SERVER, metadataUrl: ex.toolServer.metadataUrl, tokenEndpoint: ex.mayfly.tokenEndpoint, userToken });
      try {
        const r = await session.callTool(s.tool, s.args);
        outcome = r.allowed ? 'allowed' : 'refused';
        text = r.text;
      } finally {
        await session.close();
      }
    } catch (err) {
      if (!(err instanceof TokenExchangeError) || err.code !== 'ERR_TOKEN_EXCHANGE_REFUSED') throw err;
      outcome = `exchange refused: ${err.oauthError ?? '?'}`;
      text = err.description ?? err.message;
    }
    out.push({ name: s.name, agent: s.agent, user: s.user, tool: s.tool, outcome, text });
    print(`${out.length}. ${s.name}: ${s.agent} for ${s.user} → ${s.tool}: ${outcome.toUpperCase()} — ${text}`);
  }
  return out;
}

const describeRecord = (r: CallDecisionRecord | TokenRefusalRecord): string => JSON.stringify(r);

export async function runAgentsDemo(print: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<ScenarioOutcome[]> {
  const ex = await startAgentsExample();
  try {
    print(`Mayfly up: trust domain ${ex.mayfly.trustDomain}, token exchange at ${ex.mayfly.tokenEndpoint}`);
    print(`MCP server ${MCP_SERVER} at ${ex.toolServer.resource} (metadata: ${ex.toolServer.metadataUrl})`);
    const outcomes = await runScenarios(ex, print);
    print('The MCP server\'s decision records (agent and user in each):');
    for (const r of ex.decisions) print(`  ${describeRecord(r)}`);
    print('The Mayfly server\'s token exchange decisions:');
    for (const l of ex.mayfly.serverLog) {
      if (!l.includes('"event":"token_exchange"')) continue;
      const r = JSON.parse(l) as Record<string, unknown>;
      print(`  ${JSON.stringify({ outcome: r.outcome, actor: r.actor, user: r.user, audience: r.audience, scope: r.scope, error: r.error })}`);
    }
    return outcomes;
  } finally {
    await ex.stop();
    print('done: everything stopped and the temp directory removed.');
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runAgentsDemo().then(
    () => setTimeout(() => process.exit(0), 200).unref(),
    (err: unknown) => {
      process.stderr.write(`demo:agents failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
