/**
 * @module server/publishers
 *
 * The part of the server runner's composition (server/runner) that publishes the trust
 * domain's keys outside it, each when configured (server/config-federation):
 * - the bundle endpoint (federation/bundle-endpoint) serving the served trust bundle
 *   (server/trust-bundle), with the `https_spiffe` profile's X509-SVID (server/server-svid,
 *   the same minting and renewal as the agent API's, re-minted on every CA change) or the
 *   `https_web` profile's files (federation/bundle-endpoint-cert-file);
 * - OIDC discovery (oidc/discovery-routes) on the same hardened listener
 *   (federation/bundle-endpoint-http), its JWKS from the served bundle's JWT authorities.
 * Both read the served bundle per request (its bytes rebuilt only when it changed), so every
 * rotation (prepare, activate, taint, revoke) is published without a restart.
 */
import type { Logger } from 'pino';
import { BundleEndpoint } from '../federation/bundle-endpoint.js';
import { CertFileIdentity } from '../federation/bundle-endpoint-cert-file.js';
import { ReadOnlyListener, type ListenerLimits, type TlsIdentityProvider } from '../federation/bundle-endpoint-http.js';
import { OidcRoutes } from '../oidc/discovery-routes.js';
import type { Bundle } from '../spiffe/bundle/bundle.js';
import { SpiffeId } from '../spiffe/id.js';
import type { ServingCertFile } from './config-federation.js';
import type { ServerSettings } from './config.js';
import type { ServerApiCa } from './ports.js';
import { ServerSvid } from './server-svid.js';
import type { MayflyServer } from './server.js';

export interface PublishersConfig {
  settings: Pick<ServerSettings, 'bundleEndpoint' | 'oidcDiscovery'>;
  server: MayflyServer;
  ca: ServerApiCa;
  logger: Logger;
  /** Listener limits (tests shorten the timeouts). */
  limits?: Partial<ListenerLimits>;
}

export interface Publishers {
  readonly ports: { bundleEndpoint?: number; oidcDiscovery?: number };
  stop(): Promise<void>;
}

/** Lifetime of the bundle endpoint's own X509-SVID (seconds): renewed at half of it. */
const ENDPOINT_SVID_TTL_SECONDS = 3600;

/**
 * An X509-SVID the server mints for one of its own listeners (ServerSvid, renewed at half
 * life and re-minted on every CA change); its stops are pushed onto `stops`.
 */
export async function startEndpointSvid(cfg: {
  ca: ServerApiCa;
  serverId: SpiffeId;
  bundle: () => Bundle;
  logger: Logger;
  what: string;
  stops: (() => Promise<void> | void)[];
}): Promise<ServerSvid> {
  const { ca, logger } = cfg;
  const svid = new ServerSvid({ ca, serverId: cfg.serverId, ttlSeconds: ENDPOINT_SVID_TTL_SECONDS, bundle: cfg.bundle, noteChain: () => {}, logger });
  cfg.stops.push(() => svid.stop());
  await svid.rotate();
  const unsubscribe = ca.onEvent((e) => {
    if (e.type !== 'bundle-updated' && e.type !== 'authority-activated') return;
    svid.rotate().catch((err: unknown) => logger.error({ err }, `${cfg.what} SVID rotation after CA change failed`));
  });
  cfg.stops.push(unsubscribe);
  return svid;
}

/** Starts what is configured; on failure stops what it started and throws. */
export async function startPublishers(cfg: PublishersConfig): Promise<Publishers> {
  const { settings, server, ca, logger } = cfg;
  const stops: (() => Promise<void> | void)[] = [];
  const ports: { bundleEndpoint?: number; oidcDiscovery?: number } = {};
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  const onError = (what: string) => (err: unknown, msg: string): void => logger.error({ err, listener: what }, msg);
  const certFiles = (c: ServingCertFile, what: string): CertFileIdentity => {
    const id = new CertFileIdentity({ certFile: c.certFile, keyFile: c.keyFile, syncIntervalSeconds: c.syncIntervalSeconds, onError: onError(what) });
    id.start();
    stops.push(() => id.stop());
    return id;
  };
  const trustBundle = server.trustBundle;
  if (trustBundle === undefined) throw new TypeError('startPublishers needs a started MayflyServer');
  try {
    const be = settings.bundleEndpoint;
    if (be !== undefined) {
      let tls: TlsIdentityProvider;
      if (be.profile.name === 'https_web') {
        tls = certFiles(be.profile.servingCert, 'bundle endpoint');
      } else {
        tls = await startEndpointSvid({
          ca,
          serverId: be.profile.spiffeId !== undefined ? SpiffeId.parse(be.profile.spiffeId) : server.serverId,
          bundle: () => trustBundle.bundle(),
          logger,
          what: 'bundle endpoint',
          stops,
        });
      }
      const endpoint = new BundleEndpoint({
        host: be.address,
        port: be.port,
        source: trustBundle,
        tls,
        ...(cfg.limits ? { limits: cfg.limits } : {}),
        onError: onError('bundle endpoint'),
      });
      await endpoint.start();
      stops.push(() => endpoint.stop());
      ports.bundleEndpoint = endpoint.port;
      logger.info({ address: be.address, port: endpoint.port, profile: be.profile.name }, 'bundle endpoint listening');
    }
    const oidc = settings.oidcDiscovery;
    if (oidc !== undefined) {
      const routes = new OidcRoutes({ issuer: oidc.issuer, keys: { jwtAuthorities: () => trustBundle.bundle().jwtAuthorities } });
      const listener = new ReadOnlyListener({
        host: oidc.address,
        port: oidc.port,
        ...(oidc.servingCert !== undefined ? { tls: certFiles(oidc.servingCert, 'oidc discovery') } : {}),
        route: (path) => routes.route(path),
        ...(cfg.limits ? { limits: cfg.limits } : {}),
        onError: onError('oidc discovery'),
      });
      await listener.start();
      stops.push(() => listener.stop());
      ports.oidcDiscovery = listener.port;
      logger.info({ address: oidc.address, port: listener.port, issuer: oidc.issuer, tls: oidc.servingCert !== undefined }, 'OIDC discovery listening');
    }
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return { ports, stop };
}
