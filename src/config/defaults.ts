/**
 * @module config/defaults
 *
 * Defaults both binaries agree on: the trust domain a try-out runs in, and the port the
 * server's agent API listens on (and the agent dials).
 */
export const DEFAULT_TRUST_DOMAIN = 'example.org';
/** The server's agent API port (SPIRE's too). */
export const DEFAULT_SERVER_PORT = 8081;
