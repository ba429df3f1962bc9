/**
 * @module wire/server/definition
 *
 * Loads `proto/server.proto` (package `mayfly.server.v1`) once per process with
 * `@grpc/proto-loader`: snake_case field names (`keepCase`), bytes as Buffer, 64-bit
 * integers as Number, enums as their names, absent fields as zero values. Each method's
 * definition carries its path and its message codecs, and nothing here loads grpc-js, so
 * the CLI's own HTTP/2 client (cli/admin-client) uses it as is.
 *
 * The file is found by walking up from this module to a directory holding
 * `proto/server.proto` (three levels from `src/wire/server/`, four from
 * `dist/src/wire/server/`). The CLI takes its codecs from `wire/server/codecs` instead,
 * which needs neither proto-loader nor the `.proto` parser.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';

export { SERVER_API_PACKAGE, SERVER_API_SERVICES, type ServerApiService } from './definition-names.js';

function protoFile(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'proto', 'server.proto');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error('cannot find proto/server.proto above the wire/server module; is the package installed completely?');
}

let cached: PackageDefinition | undefined;

export function serverApiPackageDefinition(): PackageDefinition {
  cached ??= loadSync(protoFile(), { keepCase: true, longs: Number, bytes: Buffer, enums: String, defaults: true, oneofs: true });
  return cached;
}

