/**
 * @module server/proto
 *
 * The server API proto loader, kept at this path for the server's own modules; it lives in
 * `src/serverapi/proto.ts`, which the agent and the CLI import directly.
 */
export {
  SERVER_API_PACKAGE,
  SERVER_API_SERVICES,
  serverApiClientConstructors,
  serverApiPackageDefinition,
  serverApiServiceDefinition,
  type ServerApiService,
} from '../serverapi/proto.js';
