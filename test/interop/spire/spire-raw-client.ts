/**
 * @module test/interop/spire/spire-raw-client
 *
 * A bare grpc-js client of SPIRE's server API (`src/wire/spire/definition.ts`, the protos
 * checked against spire-api-sdk) on any admin socket, for the hostile requests SPIRE's own
 * CLI never sends (it checks its input first). Errors come back as `{ code, details }`.
 */
import { credentials, makeGenericClientConstructor, type ChannelCredentials, type Client, type ServiceError } from '@grpc/grpc-js';
import type { KeyObject } from 'node:crypto';
import { pemEncodeCertificates } from '../../../src/spiffe/x509/pem.js';
import { spireApiServiceDefinition, type SpireApiService } from '../../../src/wire/spire/definition.js';

export interface RawSpireClient {
  call<Res = Record<string, unknown>>(service: SpireApiService, method: string, req: object): Promise<Res>;
  /** The call's failure (it must fail): its gRPC code and message. */
  fail(service: SpireApiService, method: string, req: object): Promise<{ code: number; details: string }>;
  close(): void;
}

/** A client on the admin socket `socketPath`. */
export function rawSpireClient(socketPath: string): RawSpireClient {
  return rawSpireClientAt(`unix:${socketPath}`, credentials.createInsecure(), {});
}

/**
 * A client of the server's TCP port with TLS, presenting `svid` when given (else no client
 * certificate): the server is authenticated by `roots` only (its certificate names a SPIFFE
 * ID, not a host name).
 */
export function rawSpireClientTcp(address: string, roots: Buffer, svid?: { certChain: readonly Buffer[]; privateKey: KeyObject }): RawSpireClient {
  const key = svid === undefined ? null : Buffer.from(svid.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  const chain = svid === undefined ? null : Buffer.from(pemEncodeCertificates(svid.certChain));
  // A name, not the IP, as TLS server name (RFC 6066); the identity check is off anyway.
  return rawSpireClientAt(address, credentials.createSsl(roots, key, chain, { checkServerIdentity: () => undefined }), { 'grpc.ssl_target_name_override': 'mayfly-server' });
}

function rawSpireClientAt(target: string, creds: ChannelCredentials, options: Record<string, string>): RawSpireClient {
  const clients = new Map<SpireApiService, Client>();
  const client = (s: SpireApiService): Client => {
    let c = clients.get(s);
    if (c === undefined) {
      const Ctor = makeGenericClientConstructor(spireApiServiceDefinition(s), s);
      c = new Ctor(target, creds, options);
      clients.set(s, c);
    }
    return c;
  };
  const call = <Res>(service: SpireApiService, method: string, req: object): Promise<Res> =>
    new Promise((resolve, reject) => {
      const fn = (client(service) as unknown as Record<string, (r: object, cb: (e: ServiceError | null, r: Res) => void) => void>)[method];
      if (fn === undefined) throw new TypeError(`${service} has no method ${method}`);
      fn.call(client(service), req, (err, res) => (err ? reject(err) : resolve(res)));
    });
  return {
    call,
    async fail(service, method, req) {
      try {
        await call(service, method, req);
      } catch (err) {
        const e = err as ServiceError;
        return { code: e.code, details: e.details };
      }
      throw new Error(`${service}.${method} succeeded; it should have failed`);
    },
    close() {
      for (const c of clients.values()) c.close();
    },
  };
}
