/**
 * Test support: one SPIFFE mTLS server and client per transport (http2, grpc, fetch over
 * https), built only with the SDK's helpers, so that the same scenario runs on each.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { createSpiffeFetch } from '../fetch.js';
import { createSpiffeChannelCredentials, createSpiffeGrpcListener } from '../grpc.js';
import { connectSpiffeHttp2, createSpiffeHttp2Server } from '../http2.js';
import { createClientTlsOptions, createSpiffeHttpsServer, PEER_REJECTED_EVENT, peerSpiffeId, type Authorizer, type X509SvidSourceLike } from '../tls.js';

/** `https` is node:https on both ends; `fetch` is undici's fetch against a node:https server. */
export type Transport = 'http2' | 'grpc' | 'fetch' | 'https';
export const TRANSPORTS: readonly Transport[] = ['http2', 'grpc', 'fetch'];

const passthrough = (b: Buffer): Buffer => b;
export const ECHO_SERVICE: grpc.ServiceDefinition = {
  hello: { path: '/mayfly.test.Echo/Hello', requestStream: false, responseStream: false, requestSerialize: passthrough, requestDeserialize: passthrough, responseSerialize: passthrough, responseDeserialize: passthrough },
};
const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');

export interface TestServer {
  port: number;
  /** Requests a handler answered. */
  served: number;
  /** SPIFFE IDs of the connections the guard let through, in order. */
  peers: string[];
  /** Serial numbers of the client certificates of those connections. */
  serials: string[];
  rejected: Error[];
  /** Ends every established connection (clients must reconnect). */
  dropConnections(): void;
  close(): Promise<void>;
}

export interface Outcome {
  body?: string;
  error?: Error & { code?: string | number };
}

export async function startServer(kind: Transport, source: X509SvidSourceLike, authorize: Authorizer, o: { closeEach?: boolean } = {}): Promise<TestServer> {
  const sockets = new Set<tls.TLSSocket>();
  const h: TestServer = {
    port: 0, served: 0, peers: [], serials: [], rejected: [],
    dropConnections: () => { for (const s of sockets) s.destroy(); },
    close: async () => undefined,
  };
  const opts = { authorize, log: () => undefined };
  let server: tls.Server;
  let grpcServer: grpc.Server | undefined;
  if (kind === 'grpc') {
    grpcServer = new grpc.Server();
    grpcServer.addService(ECHO_SERVICE, {
      hello: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => { h.served++; cb(null, Buffer.from('hi')); },
    });
    server = createSpiffeGrpcListener(grpcServer, source, opts);
  } else if (kind === 'http2') {
    server = createSpiffeHttp2Server(source, opts, (req, res) => {
      h.served++;
      res.end(`hi ${peerSpiffeId(req.stream.session?.socket as tls.TLSSocket)}`);
    });
  } else {
    server = createSpiffeHttpsServer(source, opts, (req, res) => {
      h.served++;
      if (o.closeEach) res.setHeader('connection', 'close');
      res.end(`hi ${peerSpiffeId(req.socket as tls.TLSSocket)}`);
    });
  }
  server.on(PEER_REJECTED_EVENT, (err: Error) => h.rejected.push(err));
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    if (socket.destroyed) return; // refused by the guard
    h.peers.push(peerSpiffeId(socket).toString());
    h.serials.push(socket.getPeerCertificate().serialNumber);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  h.port = (server.address() as AddressInfo).port;
  h.close = async () => {
    grpcServer?.forceShutdown();
    h.dropConnections();
    await new Promise((r) => server.close(r));
  };
  return h;
}

export interface TestClient {
  call(): Promise<Outcome>;
  /** Resolves once the client has noticed its connection was dropped. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

const asError = (e: unknown): Error & { code?: string | number } => {
  const err = e as Error & { cause?: unknown };
  return (err.cause instanceof Error ? err.cause : err) as Error & { code?: string | number };
};

/** A long-lived client: `call` reuses its session/channel/dispatcher when the transport pools. */
export function openClient(kind: Transport, port: number, source: X509SvidSourceLike, authorize: Authorizer): TestClient {
  if (kind === 'grpc') {
    const client = new EchoClient(`127.0.0.1:${port}`, createSpiffeChannelCredentials(source, { authorize }), { 'grpc.ssl_target_name_override': 'spiffe' });
    return {
      call: () => new Promise((resolve) => {
        client.makeUnaryRequest(ECHO_SERVICE.hello!.path, passthrough, passthrough, Buffer.from('x'), { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, value?: Buffer) => {
          resolve(err ? { error: err } : { body: value?.toString() ?? '' });
        });
      }),
      settle: () => new Promise<void>((resolve) => {
        const channel = client.getChannel();
        const wait = (): void => {
          const state = channel.getConnectivityState(false);
          if (state !== grpc.connectivityState.READY) return resolve();
          channel.watchConnectivityState(state, Date.now() + 10_000, wait);
        };
        wait();
      }),
      close: async () => client.close(),
    };
  }
  if (kind === 'https') {
    const options = createClientTlsOptions(source, { authorize });
    return {
      call: () => new Promise((resolve) => {
        https.get({ host: '127.0.0.1', port, path: '/', ...options }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ body }));
          res.on('error', (e: Error) => resolve({ error: asError(e) }));
        }).on('error', (e: Error) => resolve({ error: asError(e) }));
      }),
      settle: async () => undefined,
      close: async () => options.agent?.destroy(),
    };
  }
  if (kind === 'fetch') {
    const f = createSpiffeFetch(source, { authorize });
    return {
      call: async () => {
        try {
          const res = await f.fetch(`https://127.0.0.1:${port}/`);
          return { body: await res.text() };
        } catch (e) {
          return { error: asError(e) };
        }
      },
      settle: async () => undefined, // the https server closes each connection itself
      close: () => f.close(),
    };
  }
  let session: ReturnType<typeof connectSpiffeHttp2> | undefined;
  let sessionError: Error | undefined;
  const ensure = (): ReturnType<typeof connectSpiffeHttp2> => {
    if (session && !session.closed && !session.destroyed) return session;
    sessionError = undefined;
    const s = connectSpiffeHttp2(`https://127.0.0.1:${port}`, source, { authorize });
    s.on('error', (e: Error) => (sessionError ??= e));
    session = s;
    return s;
  };
  return {
    call: () => new Promise((resolve) => {
      const s = ensure();
      let settled = false;
      let status: number | undefined;
      let body = '';
      const done = (o: Outcome): void => {
        if (settled) return;
        settled = true;
        resolve(o);
      };
      const failed = (e?: Error): void => done({ error: asError(sessionError ?? e ?? new Error('the stream ended without a response')) });
      const req = s.request({ ':path': '/' });
      req.setEncoding('utf8');
      req.on('response', (headers) => (status = Number(headers[':status'])));
      req.on('data', (d: string) => (body += d));
      req.on('end', () => (status === undefined ? failed() : done({ body })));
      req.on('error', failed);
      req.on('close', () => (status === undefined ? failed() : undefined));
      s.once('close', () => failed());
      req.end();
    }),
    settle: () => new Promise<void>((r) => (session && !session.closed && !session.destroyed ? session.once('close', () => r()) : r())),
    close: async () => {
      if (session && !session.closed && !session.destroyed) await new Promise<void>((r) => session?.close(() => r()));
    },
  };
}

/** One request on a client of its own. */
export async function requestOnce(kind: Transport, port: number, source: X509SvidSourceLike, authorize: Authorizer): Promise<Outcome> {
  const c = openClient(kind, port, source, authorize);
  try {
    return await c.call();
  } finally {
    await c.close();
  }
}
