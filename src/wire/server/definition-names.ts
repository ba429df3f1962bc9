/**
 * @module wire/server/definition-names
 *
 * The server API's package and service names, apart from any codec, so a module can name
 * them without loading proto-loader (`wire/server/definition`) or protobufjs
 * (`wire/server/codecs`).
 */
export const SERVER_API_PACKAGE = 'mayfly.server.v1';
export const SERVER_API_SERVICES = ['Entry', 'Agent', 'Bundle', 'SVID', 'LocalAuthority', 'AgentSync', 'Audit', 'Health', 'TrustDomain', 'Logger', 'Inventory'] as const;
export type ServerApiService = (typeof SERVER_API_SERVICES)[number];
