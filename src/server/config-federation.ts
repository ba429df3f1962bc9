/**
 * @module server/config-federation
 *
 * Two blocks of `server { … }` that publish this trust domain's keys outside it:
 * - `federation { bundle_endpoint { … } }`, spelt as SPIRE spells it: `address`, `port`,
 *   `refresh_hint`, and `profile "https_web" { serving_cert_file { cert_file_path
 *   key_file_path file_sync_interval } }` or `profile "https_spiffe" { }` (the default).
 *   SPIRE's `acme` is refused: Mayfly does not speak ACME. The block's `federates_with`
 *   (federation relationships) is read elsewhere; here it is only accepted.
 * - `oidc_discovery { address port issuer serving_cert_file { … } | insecure_http = true }`
 *   (Mayfly's own: SPIRE ships OIDC discovery as a separate program). `issuer` defaults to
 *   the server's `jwt_issuer`, `jwt_issuer` to `issuer`; both set and different is refused,
 *   since a relying party compares the token's `iss` with the document's issuer.
 * Problems go to the caller's collection.
 */
import { at, block, bool, checkKeys, duration, port, str } from '../config/accessors.js';
import type { HclObject } from '../config/hcl.js';
import type { Problems } from '../config/problems.js';
import { checkIssuer } from '../oidc/discovery-document.js';
import { SpiffeId } from '../spiffe/id.js';

/** A certificate and key on disk, checked again every `syncIntervalSeconds`. */
export interface ServingCertFile {
  certFile: string;
  keyFile: string;
  syncIntervalSeconds: number;
}

export interface BundleEndpointSettings {
  address: string;
  port: number;
  /** `spiffe_refresh_hint` of the served bundle (seconds); default the CA's (5 min). */
  refreshHintSeconds?: number;
  profile:
    | { name: 'https_spiffe'; /** SPIFFE ID of the endpoint's SVID; default `spiffe://<td>/spire/server`. */ spiffeId?: string }
    | { name: 'https_web'; servingCert: ServingCertFile };
}

export interface OidcDiscoverySettings {
  address: string;
  port: number;
  issuer: string;
  /** The certificate served; absent with `insecure_http` (a TLS-terminating proxy in front). */
  servingCert?: ServingCertFile;
}

/** SPIRE's defaults: every interface, port 443; files checked every minute. */
export const DEFAULT_BUNDLE_ENDPOINT_ADDRESS = '0.0.0.0';
export const DEFAULT_BUNDLE_ENDPOINT_PORT = 443;
export const DEFAULT_FILE_SYNC_INTERVAL_SECONDS = 60;
export const DEFAULT_OIDC_ADDRESS = '127.0.0.1';
export const DEFAULT_OIDC_PORT = 8444;
/** SPIRE's bundle clients poll no more often than this, whatever the hint says. */
const SPIRE_MIN_REFRESH_HINT_SECONDS = 60;

function servingCertFile(parent: HclObject, where: string, p: Problems): ServingCertFile | undefined {
  const sc = block(parent, 'serving_cert_file', where, p);
  if (sc === undefined) return undefined;
  const w = at(where, 'serving_cert_file');
  checkKeys(sc, ['cert_file_path', 'key_file_path', 'file_sync_interval'], w, p);
  const certFile = str(sc, 'cert_file_path', w, p, { nonEmpty: true });
  const keyFile = str(sc, 'key_file_path', w, p, { nonEmpty: true });
  if (certFile === undefined) p.add(`${w}.cert_file_path is required (a PEM certificate chain)`);
  if (keyFile === undefined) p.add(`${w}.key_file_path is required (a PEM private key, mode 600)`);
  const sync = duration(sc, 'file_sync_interval', w, p) ?? DEFAULT_FILE_SYNC_INTERVAL_SECONDS;
  if (certFile === undefined || keyFile === undefined) return undefined;
  return { certFile, keyFile, syncIntervalSeconds: sync };
}

function profileOf(be: HclObject, where: string, p: Problems): BundleEndpointSettings['profile'] | undefined {
  const prof = block(be, 'profile', where, p);
  if (prof === undefined) return { name: 'https_spiffe' };
  const w = at(where, 'profile');
  checkKeys(prof, ['https_web', 'https_spiffe'], w, p);
  const names = Object.keys(prof);
  if (names.length !== 1) {
    p.add(`${w} must name exactly one profile: "https_web" or "https_spiffe"`);
    return undefined;
  }
  if (names[0] === 'https_spiffe') {
    const sp = block(prof, 'https_spiffe', w, p);
    if (sp === undefined) return undefined;
    const ws = at(w, 'https_spiffe');
    checkKeys(sp, ['spiffe_id'], ws, p);
    const id = str(sp, 'spiffe_id', ws, p, { nonEmpty: true });
    return id === undefined ? { name: 'https_spiffe' } : { name: 'https_spiffe', spiffeId: id };
  }
  if (names[0] !== 'https_web') return undefined;
  const web = block(prof, 'https_web', w, p);
  if (web === undefined) return undefined;
  const ww = at(w, 'https_web');
  if (web.acme !== undefined) {
    p.add(`${ww}.acme is not supported: Mayfly does not obtain certificates with ACME; get one by other means (e.g. certbot, cert-manager) and name its files in ${ww}.serving_cert_file`);
    return undefined;
  }
  checkKeys(web, ['serving_cert_file'], ww, p);
  const cert = servingCertFile(web, ww, p);
  if (cert === undefined) {
    if (web.serving_cert_file === undefined) p.add(`${ww} needs serving_cert_file { cert_file_path, key_file_path }`);
    return undefined;
  }
  return { name: 'https_web', servingCert: cert };
}

/** `server.federation.bundle_endpoint`, when configured. */
export function readFederationBlock(srv: HclObject, trustDomain: string, p: Problems, notices: string[]): BundleEndpointSettings | undefined {
  const fed = block(srv, 'federation', 'server', p);
  if (fed === undefined) return undefined;
  const w = 'server.federation';
  // federates_with (federation relationships) is read by its own loader.
  checkKeys(fed, ['bundle_endpoint', 'federates_with'], w, p);
  const be = block(fed, 'bundle_endpoint', w, p);
  if (be === undefined) return undefined;
  const wb = `${w}.bundle_endpoint`;
  if (be.acme !== undefined) {
    p.add(`${wb}.acme is not supported: Mayfly does not obtain certificates with ACME; use profile "https_web" { serving_cert_file { … } } with a certificate you obtain, or profile "https_spiffe"`);
  }
  const keys = ['address', 'port', 'refresh_hint', 'profile'];
  checkKeys(be, be.acme === undefined ? keys : [...keys, 'acme'], wb, p); // acme: refused above, once
  const address = str(be, 'address', wb, p, { nonEmpty: true }) ?? DEFAULT_BUNDLE_ENDPOINT_ADDRESS;
  const portN = port(be.port, `${wb}.port`, p) ?? DEFAULT_BUNDLE_ENDPOINT_PORT;
  const hint = duration(be, 'refresh_hint', wb, p);
  if (hint !== undefined && hint < SPIRE_MIN_REFRESH_HINT_SECONDS) {
    notices.push(`${wb}.refresh_hint is ${hint}s: SPIRE servers that federate with this trust domain poll no more often than every ${SPIRE_MIN_REFRESH_HINT_SECONDS / 4}s (a hint below ${SPIRE_MIN_REFRESH_HINT_SECONDS}s counts as ${SPIRE_MIN_REFRESH_HINT_SECONDS}s, polled 4 times)`);
  }
  const profile = profileOf(be, wb, p);
  if (profile === undefined) return undefined;
  if (profile.name === 'https_spiffe' && profile.spiffeId !== undefined) {
    try {
      const id = SpiffeId.parse(profile.spiffeId);
      if (id.trustDomain.name !== trustDomain) p.add(`${wb}.profile.https_spiffe.spiffe_id must be in this trust domain (${trustDomain}); got ${profile.spiffeId}`);
      else if (id.path === '') p.add(`${wb}.profile.https_spiffe.spiffe_id needs a path (e.g. spiffe://${trustDomain}/spire/server)`);
    } catch (err) {
      p.add(`${wb}.profile.https_spiffe.spiffe_id: ${(err as Error).message}`);
    }
  }
  return { address, port: portN, ...(hint !== undefined ? { refreshHintSeconds: hint } : {}), profile };
}

/** `server.oidc_discovery`, when configured; also settles `jwt_issuer` (returned as `jwtIssuer`). */
export function readOidcBlock(srv: HclObject, jwtIssuer: string | undefined, p: Problems): { oidc?: OidcDiscoverySettings; jwtIssuer?: string } {
  const checkJwtIssuer = (): void => {
    if (jwtIssuer === undefined) return;
    try {
      checkIssuer(jwtIssuer, { allowHttp: true });
    } catch (err) {
      p.add(`server.jwt_issuer: ${(err as Error).message}`);
    }
  };
  const o = block(srv, 'oidc_discovery', 'server', p);
  if (o === undefined) {
    checkJwtIssuer();
    return jwtIssuer === undefined ? {} : { jwtIssuer };
  }
  const w = 'server.oidc_discovery';
  checkKeys(o, ['address', 'port', 'issuer', 'serving_cert_file', 'insecure_http'], w, p);
  const address = str(o, 'address', w, p, { nonEmpty: true }) ?? DEFAULT_OIDC_ADDRESS;
  const portN = port(o.port, `${w}.port`, p) ?? DEFAULT_OIDC_PORT;
  const insecure = bool(o, 'insecure_http', w, p) === true;
  const cert = servingCertFile(o, w, p);
  if (insecure && o.serving_cert_file !== undefined) p.add(`${w}: set serving_cert_file or insecure_http = true, not both`);
  if (!insecure && o.serving_cert_file === undefined) p.add(`${w} needs serving_cert_file { cert_file_path, key_file_path }, or insecure_http = true behind a TLS-terminating proxy`);
  const issuerRaw = str(o, 'issuer', w, p, { nonEmpty: true });
  if (issuerRaw !== undefined && jwtIssuer !== undefined && issuerRaw !== jwtIssuer) {
    p.add(`${w}.issuer (${JSON.stringify(issuerRaw)}) and server.jwt_issuer (${JSON.stringify(jwtIssuer)}) differ: relying parties compare the JWT-SVID's iss with the discovery document's issuer byte for byte; set one of them, or both the same`);
    return {};
  }
  const issuer = issuerRaw ?? jwtIssuer;
  if (issuer === undefined) {
    p.add(`${w} needs an issuer: set ${w}.issuer or server.jwt_issuer (e.g. "https://oidc.example.org")`);
    return {};
  }
  try {
    checkIssuer(issuer, { allowHttp: insecure });
  } catch (err) {
    p.add(`${issuerRaw !== undefined ? `${w}.issuer` : 'server.jwt_issuer'}: ${(err as Error).message}`);
    return {};
  }
  return { oidc: { address, port: portN, issuer, ...(cert !== undefined ? { servingCert: cert } : {}) }, jwtIssuer: issuer };
}
