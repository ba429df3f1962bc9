/**
 * @module wire/workload/proto
 *
 * Loads `proto/workload.proto` (the SPIFFE Workload API, no `package` line) at run time
 * with `@grpc/proto-loader`, so the wire definition lives in exactly one file that both
 * the endpoint (`src/workloadapi/`, in the agent) and Mayfly's own client (`src/sdk/`)
 * read. This room (`src/wire/`) imports nothing else of Mayfly's, so the SDK can depend on
 * it without pulling in any agent code.
 *
 * Approach:
 * - The proto file is found by walking up from this module until a directory holds
 *   `proto/workload.proto`: that is three levels up from `src/wire/workload/` (vitest, tsx)
 *   and four from `dist/src/wire/workload/` (after `tsc`), with no build step copying it.
 * - Options: `keepCase: true` (messages use the proto's snake_case field names, see
 *   `messages.ts`), bytes as `Buffer`, 64-bit integers as `Number`, `defaults: true`
 *   (absent fields decode to their zero value, as in every other proto3 runtime),
 *   `oneofs: true`.
 * - `google/protobuf/struct.proto` (for ValidateJWTSVID claims) is not read from disk:
 *   protobufjs, under proto-loader, ships it as a built-in "common" definition and
 *   resolves the import itself. Those built-ins spell their fields in camelCase
 *   (`stringValue`, `structValue`, ...) whatever `keepCase` says; see `struct.ts`.
 * - The definition is loaded once per process and shared.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type Options, type PackageDefinition } from '@grpc/proto-loader';

/** Name of the gRPC service; method paths are `/SpiffeWorkloadAPI/<Rpc>`. */
export const WORKLOAD_SERVICE_NAME = 'SpiffeWorkloadAPI';
/** The metadata key every Workload API call must carry, with exactly one value `"true"`. */
export const SECURITY_HEADER = 'workload.spiffe.io';

/** proto-loader options every Mayfly reader of the Workload API proto uses. */
export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: Number,
  bytes: Buffer,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Directory holding Mayfly's `.proto` files, found from this module's location. */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'workload.proto'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error('cannot find proto/workload.proto above the wire/workload module; is the package installed completely?');
}

let cached: PackageDefinition | undefined;

/** The Workload API package definition (loaded once). */
export function workloadPackageDefinition(): PackageDefinition {
  if (cached === undefined) {
    const dir = protoDir();
    cached = loadSync(join(dir, 'workload.proto'), { ...PROTO_LOADER_OPTIONS, includeDirs: [dir] });
  }
  return cached;
}

/** The `SpiffeWorkloadAPI` service definition, for `server.addService` or a client constructor. */
export function workloadServiceDefinition(): ServiceDefinition {
  const def = workloadPackageDefinition()[WORKLOAD_SERVICE_NAME];
  if (def === undefined || !('FetchX509SVID' in def)) {
    throw new Error(`proto/workload.proto does not define service ${WORKLOAD_SERVICE_NAME}`);
  }
  return def as ServiceDefinition;
}
