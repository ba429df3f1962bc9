/**
 * @module wire/spire/definition
 *
 * Loads SPIRE's server API (`proto/spire/api/server/...`, packages
 * `spire.api.server.<service>.v1`) once per process with `@grpc/proto-loader`, with the
 * same decoding choices as Mayfly's own API (`wire/server/definition`): snake_case
 * fields, bytes as Buffer, 64-bit integers as Number, enums as names, defaults filled in,
 * the set oneof case named. Nothing here loads grpc-js.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSync, type PackageDefinition, type ServiceDefinition } from '@grpc/proto-loader';

/** SPIRE's server API services, by their fully qualified gRPC names. */
export const SPIRE_API_SERVICES = {
  Agent: 'spire.api.server.agent.v1.Agent',
  Bundle: 'spire.api.server.bundle.v1.Bundle',
  Debug: 'spire.api.server.debug.v1.Debug',
  Entry: 'spire.api.server.entry.v1.Entry',
  LocalAuthority: 'spire.api.server.localauthority.v1.LocalAuthority',
  Logger: 'spire.api.server.logger.v1.Logger',
  SVID: 'spire.api.server.svid.v1.SVID',
  TrustDomain: 'spire.api.server.trustdomain.v1.TrustDomain',
} as const;

export type SpireApiService = keyof typeof SPIRE_API_SERVICES;

const FILES: Record<SpireApiService, string> = {
  Agent: 'agent',
  Bundle: 'bundle',
  Debug: 'debug',
  Entry: 'entry',
  LocalAuthority: 'localauthority',
  Logger: 'logger',
  SVID: 'svid',
  TrustDomain: 'trustdomain',
};

/** The directory holding `spire/api/...`: `proto/` of the package root. */
export function spireProtoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'spire', 'api', 'server'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error('cannot find proto/spire/api above the wire/spire module; is the package installed completely?');
}

let cached: PackageDefinition | undefined;

export function spireApiPackageDefinition(): PackageDefinition {
  if (cached === undefined) {
    const root = spireProtoRoot();
    const files = Object.values(FILES).map((f) => `spire/api/server/${f}/v1/${f}.proto`);
    cached = loadSync(files, { includeDirs: [root], keepCase: true, longs: Number, bytes: Buffer, enums: String, defaults: true, oneofs: true });
  }
  return cached;
}

/** The grpc service definition of one SPIRE service. */
export function spireApiServiceDefinition(name: SpireApiService): ServiceDefinition {
  const def = spireApiPackageDefinition()[SPIRE_API_SERVICES[name]];
  if (def === undefined || 'format' in def) throw new Error(`SPIRE API service ${name} is missing from proto/spire`);
  return def as ServiceDefinition;
}
