/**
 * @module server/delegation-service
 *
 * The part of the server runner's composition that serves the RFC 8693 token exchange
 * (src/delegation) when `server.delegation` is configured (server/config-delegation): an
 * HTTPS listener asking for (not requiring) a client certificate, its own certificate an
 * X509-SVID the server mints for itself (server/publishers' startEndpointSvid, as the
 * bundle endpoint's `https_spiffe` profile), `POST /token` answered by
 * delegation/token-endpoint (token buckets per actor and per source address), issued
 * tokens signed with the trust domain's active JWT key. The upstream issuer's keys are a
 * static JWKS or found by OIDC discovery (delegation/upstream-jwks: the start waits for one
 * fetch attempt only; an unreachable issuer makes exchanges answer 503 until it is back).
 * Every decision is one log line naming the agent and the user.
 *
 * Threat: an actor authenticated by something weaker than its SVID. The TLS layer accepts
 * any client certificate only so the handler can refuse a bad one with an OAuth error; the
 * handler verifies the chain against the served trust bundle before anything else.
 */
import { createServer, type Server } from 'node:https';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { ExchangeRecord, UpstreamIssuer } from '../delegation/exchange.js';
import { TokenExchanger } from '../delegation/exchange.js';
import { TokenBuckets } from '../delegation/rate-limit.js';
import { DiscoveredJwks } from '../delegation/upstream-jwks.js';
import { tokenEndpointHandler } from '../delegation/token-endpoint.js';
import { SpiffeId } from '../spiffe/id.js';
import type { DelegationSettings } from './config-delegation.js';
import type { ServedTrustBundle, ServerApiCa } from './ports.js';
import { startEndpointSvid } from './publishers.js';

/** The path of the token endpoint. */
export const TOKEN_ENDPOINT_PATH = '/token';

export interface DelegationServiceConfig {
  settings: DelegationSettings;
  /** `iss` of the issued tokens (server.jwt_issuer; default `spiffe://<td>`). */
  issuer: string;
  trustDomain: string;
  serverId: SpiffeId;
  ca: ServerApiCa & { jwtSigningKey(): { kid: string; alg: string; privateKey: KeyObject } };
  trustBundle: ServedTrustBundle;
  logger: Logger;
}

export interface DelegationService {
  readonly port: number;
  stop(): Promise<void>;
}

/** One pino line per decision, both identities named. */
export function logExchange(logger: Pick<Logger, 'info' | 'warn'>): (r: ExchangeRecord) => void {
  return (r) => {
    const fields = { event: r.event, outcome: r.outcome, actor: r.actor, user: r.user, audience: r.audience, scope: r.scope, jti: r.jti, error: r.error, reason: r.reason, ...(r.address !== undefined ? { address: r.address } : {}) };
    if (r.outcome === 'issued') logger.info(fields, `token exchange: issued to ${r.actor} for ${r.user ?? '?'}`);
    else logger.warn(fields, `token exchange: refused ${r.actor} for ${r.user ?? '?'}`);
  };
}

/** Starts the token exchange listener; on failure stops what it started and throws. */
export async function startDelegationService(cfg: DelegationServiceConfig): Promise<DelegationService> {
  const { settings, ca, trustBundle, logger } = cfg;
  const stops: (() => Promise<void> | void)[] = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    const record = logExchange(logger);
    const up = settings.upstream;
    let jwks: UpstreamIssuer['jwks'];
    if (up.discovery !== undefined) {
      const discovered = new DiscoveredJwks({
        discoveryUrl: new URL(up.discovery.url),
        issuer: up.issuer,
        ...(up.discovery.ca !== undefined ? { ca: up.discovery.ca } : {}),
        refreshIntervalMs: up.discovery.refreshIntervalSeconds * 1000,
        logger,
      });
      stops.push(() => discovered.stop());
      await discovered.ready(); // one attempt (bounded by its timeout); an unreachable issuer is retried, not fatal
      jwks = discovered;
    } else if (up.jwks !== undefined) {
      jwks = up.jwks;
    } else {
      throw new TypeError('server.delegation.upstream has neither a JWKS nor a discovery URL');
    }
    const now = Date.now;
    const rl = settings.rateLimit;
    const rateLimit = rl === undefined ? undefined : { perActor: new TokenBuckets({ ...rl.perActor, now }), perAddress: new TokenBuckets({ ...rl.perAddress, now }) };
    const exchanger = new TokenExchanger({
      issuer: cfg.issuer,
      trustDomain: cfg.trustDomain,
      upstream: { issuer: up.issuer, audience: up.audience, algorithms: up.algorithms, jwks },
      policy: settings.policy,
      signingKey: () => ca.jwtSigningKey(),
      ownKeys: () => trustBundle.bundle().jwtAuthorities,
      maxTtlSeconds: settings.maxTtlSeconds,
      record,
    });
    const handler = tokenEndpointHandler({
      exchanger,
      x509Bundle: () => trustBundle.bundle(),
      jwtBundle: () => trustBundle.bundle(),
      actorTokenAudience: cfg.issuer,
      record,
      ...(rateLimit !== undefined ? { rateLimit } : {}),
    });
    const svid = await startEndpointSvid({
      ca,
      serverId: settings.spiffeId !== undefined ? SpiffeId.parse(settings.spiffeId) : cfg.serverId,
      bundle: () => trustBundle.bundle(),
      logger,
      what: 'delegation endpoint',
      stops,
    });
    const first = svid.current();
    if (first === undefined) throw new Error('the delegation endpoint has no SVID');
    const server: Server = createServer(
      { cert: first.certPem, key: first.keyPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2', handshakeTimeout: 10_000 },
      (req, res) => {
        if ((req.url ?? '').split('?')[0] !== TOKEN_ENDPOINT_PATH) {
          res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"invalid_request","error_description":"POST to /token"}');
          return;
        }
        handler(req, res);
      },
    );
    server.headersTimeout = 10_000;
    server.requestTimeout = 15_000;
    server.keepAliveTimeout = 5_000;
    server.maxConnections = 256;
    server.on('tlsClientError', () => undefined);
    stops.push(svid.onChange((id) => server.setSecureContext({ cert: id.certPem, key: id.keyPem })));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(settings.port, settings.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    const addr = server.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : settings.port;
    logger.info({ address: settings.address, port, issuer: cfg.issuer, upstream: up.issuer, upstream_keys: up.discovery?.url ?? up.jwksFile, rate_limit: rl ?? 'off', rules: settings.policy.rules.length }, 'token exchange (delegation) listening');
    return { port, stop };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
