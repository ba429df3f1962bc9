/**
 * @module agent/token-exchange-client
 *
 * The agent's client of the server's RFC 8693 token endpoint (server.delegation), used by
 * the agent-local `ExchangeForUser` (workloadapi/token-exchange): a form POST carrying the
 * caller's JWT-SVID as `actor_token` and the user's token as `subject_token`, over TLS to
 * an endpoint whose X509-SVID must verify against the agent's own trust bundle and be the
 * configured server ID (default `spiffe://<td>/spire/server`).
 *
 * Threats: handing a user token to an impostor endpoint (server SVID verified and its ID
 * authorised at the handshake, before anything is sent; no redirects; no session reuse);
 * an unbounded or slow answer (64 KiB cap, timeout).
 */
import https from 'node:https';
import tls from 'node:tls';
import type { BundleSet } from '../spiffe/bundle/set.js';
import { SpiffeId, TrustDomain } from '../spiffe/id.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { verifyX509Svid } from '../spiffe/x509/verify.js';
import { LocalExchangeRefusal, type LocalExchangeRequest, type LocalExchangeResult, type LocalTokenExchange } from '../workloadapi/token-exchange.js';

const MAX_ANSWER = 64 * 1024;
const JWT = 'urn:ietf:params:oauth:token-type:jwt';

export interface AgentTokenExchangeConfig {
  /** `https://host:port/token` of server.delegation. */
  endpoint: string;
  trustDomain: string;
  /** The endpoint's SPIFFE ID (default `spiffe://<td>/spire/server`). */
  serverId?: string;
  /** Audience of the actor JWT-SVIDs: the server's issuer (server.jwt_issuer, default `spiffe://<td>`). */
  actorAudience?: string;
  /** The agent's bundles (its cache). */
  bundles: () => BundleSet;
  now?: () => Date;
  timeoutMs?: number;
}

function chainOf(cert: tls.DetailedPeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  let c: tls.DetailedPeerCertificate | undefined = cert;
  while (c !== undefined && c.raw !== undefined && out.length < 10) {
    out.push(c.raw);
    const next: tls.DetailedPeerCertificate | undefined = c.issuerCertificate;
    if (next === undefined || next === c || next.raw?.equals(c.raw)) break;
    c = next;
  }
  return out;
}

/** The LocalTokenExchange the agent serves with. */
export function agentTokenExchange(cfg: AgentTokenExchangeConfig): LocalTokenExchange {
  const url = new URL(cfg.endpoint);
  if (url.protocol !== 'https:') throw new TypeError(`token exchange endpoint ${cfg.endpoint} must be https://`);
  const td = TrustDomain.parse(cfg.trustDomain);
  const serverId = SpiffeId.parse(cfg.serverId ?? `spiffe://${td.name}/spire/server`).toString();
  const now = cfg.now ?? (() => new Date());
  const timeoutMs = cfg.timeoutMs ?? 10_000;
  return {
    actorAudience: cfg.actorAudience ?? `spiffe://${td.name}`,
    exchange: (req: LocalExchangeRequest) =>
      new Promise<LocalExchangeResult>((resolve, reject) => {
        const bundle = cfg.bundles().get(td);
        if (bundle === undefined) {
          reject(new Error(`the agent holds no bundle of ${td.name}`));
          return;
        }
        const form = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: req.subjectToken, subject_token_type: req.subjectTokenType, resource: req.audience, requested_token_type: JWT, actor_token: req.actorToken, actor_token_type: JWT });
        if (req.scope.length > 0) form.set('scope', req.scope.join(' '));
        const body = form.toString();
        const r = https.request(
          {
            host: url.hostname.replace(/^\[|\]$/g, ''),
            port: url.port === '' ? 443 : Number(url.port),
            path: url.pathname,
            method: 'POST',
            agent: false,
            ca: pemEncodeCertificates([...bundle.x509Authorities]),
            minVersion: 'TLSv1.2',
            timeout: timeoutMs,
            checkServerIdentity: (_h, cert) => {
              try {
                const id = verifyX509Svid(chainOf(cert as tls.DetailedPeerCertificate), bundle, { now: now() }).spiffeId.toString();
                return id === serverId ? undefined : new Error(`the token endpoint presented ${id}, not ${serverId}`);
              } catch (err) {
                return err as Error;
              }
            },
            headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'content-length': Buffer.byteLength(body) },
          },
          (res) => {
            const parts: Buffer[] = [];
            let n = 0;
            res.on('data', (d: Buffer) => {
              n += d.length;
              if (n > MAX_ANSWER) r.destroy(new Error(`the token endpoint's answer is larger than ${MAX_ANSWER} bytes`));
              else parts.push(d);
            });
            res.on('end', () => {
              let j: Record<string, unknown>;
              try {
                j = JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>;
                if (typeof j !== 'object' || j === null) throw new Error('not an object');
              } catch {
                reject(new Error(`the token endpoint answered HTTP ${res.statusCode ?? 0} without JSON`));
                return;
              }
              if (res.statusCode !== 200) {
                const e = typeof j.error === 'string' ? j.error.slice(0, 64) : 'server_error';
                reject(new LocalExchangeRefusal(e, typeof j.error_description === 'string' ? j.error_description.slice(0, 1024) : `HTTP ${res.statusCode ?? 0}`));
                return;
              }
              if (typeof j.access_token !== 'string' || j.access_token === '') {
                reject(new Error('the token endpoint answered without access_token'));
                return;
              }
              resolve({
                accessToken: j.access_token,
                issuedTokenType: typeof j.issued_token_type === 'string' ? j.issued_token_type : JWT,
                tokenType: typeof j.token_type === 'string' ? j.token_type : 'Bearer',
                expiresIn: typeof j.expires_in === 'number' ? j.expires_in : 0,
                scope: typeof j.scope === 'string' ? j.scope.split(' ').filter((s) => s !== '') : [],
              });
            });
          },
        );
        r.on('timeout', () => r.destroy(new Error(`the token endpoint did not answer within ${timeoutMs} ms`)));
        r.on('error', reject);
        r.end(body);
      }),
  };
}

