/**
 * @module wire/workload/delegation-proto
 *
 * Loads `proto/agent-delegation.proto`: Mayfly's token exchange for local workloads, served
 * by the agent beside the Workload API on the same socket (workloadapi/token-exchange) and
 * called by the SDK (sdk/exchange-via-agent). Same loader options as the Workload API.
 */
import { join } from 'node:path';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS, protoDir } from './proto.js';

export const AGENT_DELEGATION_SERVICE = 'mayfly.agent.delegation.v1.AgentDelegation';
/** Trailing metadata key carrying the OAuth error of a refused exchange. */
export const OAUTH_ERROR_METADATA = 'oauth-error';

export interface ExchangeForUserRequestMessage {
  subject_token: string;
  subject_token_type: string;
  audience: string;
  scope: string[];
  spiffe_id: string;
}

export interface ExchangeForUserResponseMessage {
  access_token: string;
  issued_token_type: string;
  token_type: string;
  expires_in: number;
  scope: string[];
  spiffe_id: string;
}

let cached: PackageDefinition | undefined;

/** The AgentDelegation service definition (loaded once). */
export function agentDelegationServiceDefinition(): ServiceDefinition {
  if (cached === undefined) {
    const dir = protoDir();
    cached = loadSync(join(dir, 'agent-delegation.proto'), { ...PROTO_LOADER_OPTIONS, includeDirs: [dir] });
  }
  const def = cached[AGENT_DELEGATION_SERVICE];
  if (def === undefined || !('ExchangeForUser' in def)) throw new Error(`proto/agent-delegation.proto does not define ${AGENT_DELEGATION_SERVICE}`);
  return def as ServiceDefinition;
}
