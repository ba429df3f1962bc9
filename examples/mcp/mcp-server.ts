/**
 * @module examples/mcp/mcp-server
 *
 * An MCP server (the official `@modelcontextprotocol/sdk`, Streamable HTTP, stateless)
 * exposing three tools to AI agents acting for users, over mutual TLS with its own Mayfly
 * X509-SVID. It publishes its Protected Resource Metadata (RFC 9728) and accepts only
 * delegated tokens from Mayfly's token exchange whose audience is itself (no token
 * passthrough), presented by the agent they name (`act.sub` = the TLS peer's SPIFFE ID, and
 * the certificate binding `cnf.x5t#S256` checked). Each tool call is then decided by
 * `authorizeCall` over both identities (agent, user with groups and roles), and every
 * decision is one structured log record naming both.
 *
 * Threats: a token minted for another service replayed here; a token stolen from one agent
 * used by another; an agent reaching a tool its user may not use, or a user reaching a tool
 * through an agent not meant for it. Default deny.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
// In your project: import { ... } from 'mayfly/sdk'
import { authorizeCall, authorizeMemberOf, createSpiffeHttpsServer, peerSpiffeId, validateDelegatedToken, type CallDecisionRecord, type CallRule, type X509SvidSourceLike } from '../../src/sdk/index.js';
import type { Bundle } from '../../src/spiffe/bundle/bundle.js';

/** The tools, each with the OAuth scope its token must carry (coarse) before the per-call policy (fine). */
export const TOOLS = {
  read_file: { scope: 'tools.read', description: 'Read a file of a repository', resourceArg: 'path' },
  search: { scope: 'tools.read', description: 'Search the knowledge base', resourceArg: undefined },
  deploy: { scope: 'tools.write', description: 'Deploy a service', resourceArg: 'service' },
} as const;
export type ToolName = keyof typeof TOOLS;

export interface ToolServerConfig {
  /** The MCP server's own SVIDs (an X509Source). */
  source: X509SvidSourceLike;
  /** Where the trust domain's JWT keys come from (a JwtSource or BundleSource). */
  bundleSource: { getBundleForTrustDomain(td: string): Bundle };
  trustDomain: string;
  /** `iss` of Mayfly's delegated tokens. */
  issuer: string;
  /** Port to listen on (127.0.0.1); its resource identifier is `https://127.0.0.1:<port>/mcp`. */
  port: number;
  rules: readonly CallRule[];
  /** Every decision: token refusals and per-call decisions, both identities named. */
  log: (record: CallDecisionRecord | TokenRefusalRecord) => void;
}

export interface TokenRefusalRecord {
  readonly event: 'token_refused';
  /** The TLS peer (the agent that presented the token). */
  readonly actor: string;
  readonly user: string | null;
  readonly reason: string;
}

export interface ToolServer {
  /** The resource identifier (RFC 8707 / RFC 9728 `resource`): the only audience accepted. */
  readonly resource: string;
  readonly metadataUrl: string;
  close(): Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const b = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(b);
}

const text = (t: string, isError = false): CallToolResult => ({ content: [{ type: 'text', text: t }], ...(isError ? { isError: true } : {}) });

export async function startToolServer(cfg: ToolServerConfig): Promise<ToolServer> {
  const origin = `https://127.0.0.1:${cfg.port}`;
  const resource = `${origin}/mcp`;
  const metadataUrl = `${origin}/.well-known/oauth-protected-resource/mcp`;
  // RFC 9728 §2: what a client learns before it asks for a token.
  const metadata = {
    resource,
    authorization_servers: [cfg.issuer],
    bearer_methods_supported: ['header'],
    scopes_supported: [...new Set(Object.values(TOOLS).map((t) => t.scope))],
    resource_name: 'Mayfly MCP example',
    tls_client_certificate_bound_access_tokens: true,
  };

  const challenge = (error?: string): Record<string, string> => ({ 'www-authenticate': `Bearer resource_metadata="${metadataUrl}"${error !== undefined ? `, error="${error}"` : ''}` });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && (path === '/.well-known/oauth-protected-resource' || path === '/.well-known/oauth-protected-resource/mcp')) {
      json(res, 200, metadata);
      return;
    }
    if (path !== '/mcp') {
      json(res, 404, { error: 'not_found' });
      return;
    }
    if (req.method !== 'POST') {
      // Stateless: no server-initiated stream (GET) and no session to end (DELETE).
      json(res, 405, { error: 'method_not_allowed' }, { allow: 'POST' });
      return;
    }
    const socket = req.socket as TLSSocket;
    const peer = peerSpiffeId(socket).toString();
    const auth = req.headers.authorization;
    if (auth === undefined || !auth.startsWith('Bearer ')) {
      json(res, 401, { error: 'invalid_request', error_description: 'a delegated token is required (Authorization: Bearer)' }, challenge());
      return;
    }
    const token = auth.slice('Bearer '.length);
    let delegated;
    try {
      delegated = await validateDelegatedToken(token, {
        audience: resource,
        issuer: cfg.issuer,
        trustDomain: cfg.trustDomain,
        bundleSource: cfg.bundleSource,
        peerCertificate: socket.getPeerCertificate().raw,
      });
      if (delegated.actorChain[0] !== peer) throw new Error(`the token names actor ${delegated.actorChain[0] ?? '?'}, but ${peer} presented it`);
    } catch (err) {
      cfg.log({ event: 'token_refused', actor: peer, user: null, reason: (err as Error).message });
      json(res, 401, { error: 'invalid_token', error_description: (err as Error).message }, challenge('invalid_token'));
      return;
    }
    const claims = delegated.claims as { groups?: unknown; roles?: unknown; jti?: unknown };
    const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
    const user = { sub: delegated.user, groups: list(claims.groups), roles: list(claims.roles) };

    // Stateless Streamable HTTP: one MCP server and transport per request.
    const mcp = new Server({ name: 'mayfly-mcp-example', version: '1.0.0' }, { capabilities: { tools: {} } });
    mcp.setRequestHandler(ListToolsRequestSchema, () => ({
      tools: Object.entries(TOOLS).map(([name, t]) => ({
        name,
        description: t.description,
        inputSchema: { type: 'object' as const, properties: t.resourceArg !== undefined ? { [t.resourceArg]: { type: 'string' } } : { query: { type: 'string' } } },
      })),
    }));
    mcp.setRequestHandler(CallToolRequestSchema, (request) => {
      const name = request.params.name;
      const tool = (TOOLS as Record<string, (typeof TOOLS)[ToolName]>)[name];
      if (tool === undefined) return text(`unknown tool ${name}`, true);
      const args = request.params.arguments ?? {};
      const target = tool.resourceArg !== undefined && typeof args[tool.resourceArg] === 'string' ? (args[tool.resourceArg] as string) : undefined;
      if (!delegated.scope.includes(tool.scope)) {
        const r: CallDecisionRecord = { event: 'authorize_call', decision: 'deny', rule: `scope:${tool.scope}`, actor: peer, user: user.sub, tool: name, ...(target !== undefined ? { resource: target } : {}) };
        cfg.log(r);
        return text(`refused: the token does not carry scope ${tool.scope}`, true);
      }
      const d = authorizeCall({ actor: peer, user, tool: name, ...(target !== undefined ? { resource: target } : {}), context: { jti: claims.jti, actorChain: delegated.actorChain } }, { rules: cfg.rules, emit: cfg.log });
      if (!d.allow) return text(`refused: ${peer} acting for ${user.sub} may not call ${name}${target !== undefined ? ` on ${target}` : ''} (${d.rule ?? 'no rule allows it'})`, true);
      return text(`${name} ok for ${user.sub} via ${peer}${target !== undefined ? `: ${target}` : ''}`);
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    const authed = req as IncomingMessage & { auth?: { token: string; clientId: string; scopes: string[]; expiresAt?: number; resource?: URL; extra?: Record<string, unknown> } };
    authed.auth = { token, clientId: peer, scopes: [...delegated.scope], resource: new URL(resource), extra: { user: user.sub, actorChain: delegated.actorChain } };
    if (typeof delegated.claims.exp === 'number') authed.auth.expiresAt = delegated.claims.exp;
    await transport.handleRequest(authed, res);
  };

  // mTLS: any workload of our trust domain may connect; what it may do is the token's and the policy's to say.
  const server: https.Server = createSpiffeHttpsServer(cfg.source, { authorize: authorizeMemberOf(cfg.trustDomain) }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { error: 'server_error', error_description: (err as Error).message });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  if (bound !== cfg.port) throw new Error(`listening on ${bound}, not ${cfg.port}`);
  return {
    resource,
    metadataUrl,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
