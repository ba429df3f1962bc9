/**
 * @module wire/server/proto
 *
 * The server API for grpc-js: service definitions for the server and client constructors
 * for the agent and tests, from the package definition of `wire/server/definition`.
 *
 * Neutral ground for both ends of the server API: the server registers its services from
 * here and the agent builds its clients from here, so the agent never imports
 * `src/server/`.
 */
import { loadPackageDefinition, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { SERVER_API_PACKAGE, serverApiPackageDefinition, type ServerApiService } from './definition.js';

export { SERVER_API_PACKAGE, SERVER_API_SERVICES, serverApiPackageDefinition, type ServerApiService } from './definition.js';

/** The service definition of one server API service, for `server.addService`. */
export function serverApiServiceDefinition(name: ServerApiService): ServiceDefinition {
  const def = serverApiPackageDefinition()[`${SERVER_API_PACKAGE}.${name}`];
  if (def === undefined || 'format' in def) throw new Error(`proto/server.proto does not define service ${name}`);
  return def as ServiceDefinition;
}

/** Client constructors for every service (for the CLI, the agent and tests). */
export function serverApiClientConstructors(): Record<ServerApiService, ServiceClientConstructor> {
  const loaded = loadPackageDefinition(serverApiPackageDefinition()) as unknown as {
    mayfly: { server: { v1: Record<ServerApiService, ServiceClientConstructor> } };
  };
  return loaded.mayfly.server.v1;
}
