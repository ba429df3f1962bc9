/**
 * @module examples/mcp/agent-client
 *
 * The AI agent: a workload attested by a Mayfly agent (its SVID from the Workload API),
 * acting for a user. It reads the MCP server's Protected Resource Metadata (RFC 9728) to
 * learn the resource identifier, exchanges the user's token for a delegated token naming
 * both of them (`exchangeForUser`, RFC 8693 over mTLS), and calls tools with the official MCP
 * client over Streamable HTTP, on mutual TLS with the same SVID (the token is bound to it).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
// In your project: import { ... } from 'mayfly/sdk'
import { authorizeId, createSpiffeFetch, exchangeForUser, type UserDelegatedToken, type X509SvidSourceLike } from '../../src/sdk/index.js';

export interface ToolOutcome {
  readonly allowed: boolean;
  readonly text: string;
}

export interface AgentSession {
  readonly token: UserDelegatedToken;
  callTool(name: string, args?: Record<string, unknown>): Promise<ToolOutcome>;
  close(): Promise<void>;
}

export interface ActForUserConfig {
  /** The agent's own SVIDs (an X509Source). */
  source: X509SvidSourceLike;
  /** The MCP server's SPIFFE ID (who the agent expects to talk to). */
  mcpServerId: string;
  /** Where its Protected Resource Metadata is. */
  metadataUrl: string;
  /** Mayfly's token endpoint (server.delegation). */
  tokenEndpoint: string;
  userToken: string;
  scope?: string;
}

/** Discovers the resource, exchanges the user token for it, and opens an MCP session. */
export async function actForUser(cfg: ActForUserConfig): Promise<AgentSession> {
  const mtls = createSpiffeFetch(cfg.source, { authorize: authorizeId(cfg.mcpServerId) });
  try {
    const prm = (await (await mtls.fetch(cfg.metadataUrl)).json()) as { resource?: unknown };
    if (typeof prm.resource !== 'string') throw new Error(`${cfg.metadataUrl} names no resource`);
    const token = await exchangeForUser(cfg.source, cfg.userToken, { audience: prm.resource, endpoint: cfg.tokenEndpoint, ...(cfg.scope !== undefined ? { scope: cfg.scope } : {}) });
    const client = new Client({ name: 'mayfly-example-agent', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(prm.resource), {
      fetch: mtls.fetch as unknown as FetchLike,
      requestInit: { headers: { authorization: `Bearer ${token.accessToken}` } },
    });
    await client.connect(transport);
    return {
      token,
      callTool: async (name, args = {}) => {
        const r = await client.callTool({ name, arguments: args });
        const content = Array.isArray(r.content) ? (r.content as { type: string; text?: string }[]) : [];
        return { allowed: r.isError !== true, text: content.map((c) => c.text ?? '').join('\n') };
      },
      close: async () => {
        await client.close();
        await mtls.close();
      },
    };
  } catch (err) {
    await mtls.close();
    throw err;
  }
}
