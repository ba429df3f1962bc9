/**
 * @module server/client
 *
 * Clients of the server API, for the CLI, the agent and tests: over the admin Unix socket,
 * or over TCP with TLS where the server must present the X509-SVID of
 * `spiffe://<td>/spire/server` chaining to the given bundle roots, and the client presents
 * its own X509-SVID when it has one (an attesting agent has none yet).
 *
 * Threat: talking to an impostor. Host names mean nothing in SPIFFE, so the usual host
 * name check is replaced with a check of the server certificate's SPIFFE ID; the chain
 * itself is verified by TLS against the trust domain's roots only.
 */
import type { KeyObject } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { Channel, ChannelCredentials, credentials, type Client, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { TrustDomain } from '../spiffe/id.js';
import { parseCertificate } from '../spiffe/x509/parse.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { serverApiClientConstructors, SERVER_API_SERVICES, type ServerApiService } from '../wire/server/proto.js';

export type ServerApiClients = Record<ServerApiService, Client> & { close(): void };

const CLIENT_OPTIONS = { 'grpc.max_receive_message_length': 64 * 1024 * 1024 };

function makeClients(target: string, creds: ChannelCredentials, extra: Record<string, string> = {}): ServerApiClients {
  const ctors = serverApiClientConstructors();
  const options = { ...CLIENT_OPTIONS, ...extra };
  const channel = new Channel(target, creds, options);
  const out = {} as Record<ServerApiService, Client>;
  for (const name of SERVER_API_SERVICES) {
    out[name] = new ctors[name](target, creds, { ...options, channelOverride: channel });
  }
  return { ...out, close: () => channel.close() };
}

/** Clients over the admin Unix socket. */
export function adminSocketClients(socketPath: string): ServerApiClients {
  return makeClients(`unix:${socketPath}`, credentials.createInsecure());
}

export interface TcpClientsConfig {
  /** host:port */
  address: string;
  trustDomain: string | TrustDomain;
  /** The trust domain's X.509 roots (DER). */
  bundleRoots: readonly Uint8Array[];
  /** The caller's X509-SVID (chain leaf first, and its key), if it has one. */
  svid?: { certChain: readonly Uint8Array[]; privateKey: KeyObject };
}

/** Clients over TCP with TLS, authenticating the server by its SPIFFE ID. */
export function tcpClients(cfg: TcpClientsConfig): ServerApiClients {
  const td = typeof cfg.trustDomain === 'string' ? TrustDomain.parse(cfg.trustDomain) : cfg.trustDomain;
  const expected = td.idWithPath('/spire/server').toString();
  const roots = Buffer.from(pemEncodeCertificates(cfg.bundleRoots));
  const key = cfg.svid ? Buffer.from(cfg.svid.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string) : null;
  const chain = cfg.svid ? Buffer.from(pemEncodeCertificates(cfg.svid.certChain)) : null;
  const creds = credentials.createSsl(roots, key, chain, {
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      try {
        const uris = parseCertificate(cert.raw).uriSans;
        if (uris.length === 1 && uris[0] === expected) return undefined;
        return new Error(`server presented ${uris.join(', ') || 'no SPIFFE ID'}; expected ${expected}`);
      } catch (err) {
        return err as Error;
      }
    },
  });
  // The server is identified by its SPIFFE ID above, not a host name; a fixed TLS server name
  // also avoids sending an IP address as SNI (RFC 6066), as the agent's client does.
  return makeClients(cfg.address, creds, { 'grpc.ssl_target_name_override': `mayfly-server.${td.name}`, 'grpc.default_authority': cfg.address });
}

/** Calls a unary method and resolves with its response. */
export function unaryCall<Res>(client: Client, method: string, request: unknown, opts: { metadata?: Metadata; deadlineMs?: number } = {}): Promise<Res> {
  const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method];
  if (typeof fn !== 'function') throw new TypeError(`no method ${method} on this client`);
  return new Promise((resolve, reject) => {
    const args: unknown[] = [request];
    if (opts.metadata) args.push(opts.metadata);
    args.push({ deadline: Date.now() + (opts.deadlineMs ?? 10_000) });
    args.push((err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
    fn.apply(client, args);
  });
}
