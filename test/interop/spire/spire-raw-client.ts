/**
 * @module test/interop/spire/spire-raw-client
 *
 * A bare grpc-js client of SPIRE's server API (`src/wire/spire/definition.ts`, the protos
 * checked against spire-api-sdk) on any admin socket, for the hostile requests SPIRE's own
 * CLI never sends (it checks its input first). Errors come back as `{ code, details }`.
 */
import { credentials, makeGenericClientConstructor, type Client, type ServiceError } from '@grpc/grpc-js';
import { spireApiServiceDefinition, type SpireApiService } from '../../../src/wire/spire/definition.js';

export interface RawSpireClient {
  call<Res = Record<string, unknown>>(service: SpireApiService, method: string, req: object): Promise<Res>;
  /** The call's failure (it must fail): its gRPC code and message. */
  fail(service: SpireApiService, method: string, req: object): Promise<{ code: number; details: string }>;
  close(): void;
}

export function rawSpireClient(socketPath: string): RawSpireClient {
  const clients = new Map<SpireApiService, Client>();
  const client = (s: SpireApiService): Client => {
    let c = clients.get(s);
    if (c === undefined) {
      const Ctor = makeGenericClientConstructor(spireApiServiceDefinition(s), s);
      c = new Ctor(`unix:${socketPath}`, credentials.createInsecure());
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
