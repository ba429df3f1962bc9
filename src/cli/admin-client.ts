/**
 * @module cli/admin-client
 *
 * The CLI's client of the server's admin API: unary gRPC calls over the admin Unix socket
 * on `node:http2`, with the message codecs of `wire/server/codecs` (protobufjs/light over
 * the JSON descriptor: neither proto-loader nor the `.proto` parser). grpc-js is not loaded: a CLI call makes one connection and a handful of unary calls, and grpc-js's
 * channel machinery cost ~45 ms of every call's start-up (issue 18). Failures reject with
 * the shape of a grpc-js `ServiceError` (`code`, `details`), so `describeCallError` reads
 * both alike.
 *
 * Threat: a hostile or broken peer on the socket. A response larger than 64 MiB, a
 * compressed or truncated message, or anything but one message then a status is refused
 * with a gRPC status, never half-read.
 */
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { serverApiMethodCodec } from '../wire/server/codecs.js';
import type { ServerApiService } from '../wire/server/definition-names.js';

/** Largest response accepted (the server's entry lists can be large). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

const UNKNOWN = 2;
const DEADLINE_EXCEEDED = 4;
const RESOURCE_EXHAUSTED = 8;
const INTERNAL = 13;
const UNAVAILABLE = 14;

/** A failed call, shaped as grpc-js's ServiceError. */
export class AdminCallError extends Error {
  readonly code: number;
  readonly details: string;

  constructor(code: number, details: string) {
    super(`${code} ${details}`);
    this.name = 'AdminCallError';
    this.code = code;
    this.details = details;
  }
}

/** A unary method as the client needs it: its HTTP/2 path and its message codecs. */
export interface UnaryMethod {
  readonly path: string;
  requestSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}

function methodOf(service: ServerApiService, method: string): UnaryMethod {
  const m = serverApiMethodCodec(service, method);
  if (m.requestStream || m.responseStream) throw new TypeError(`no unary method ${service}.${method} in proto/server.proto`);
  return m;
}

function grpcMessage(raw: string | string[] | undefined): string {
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (v === undefined) return '';
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

export class AdminClient {
  readonly #socketPath: string;
  #session: ClientHttp2Session | undefined;
  #sessionError: Error | undefined;

  constructor(config: { socketPath: string }) {
    this.#socketPath = config.socketPath;
  }

  #open(): ClientHttp2Session {
    if (this.#session !== undefined && !this.#session.closed && !this.#session.destroyed && this.#sessionError === undefined) return this.#session;
    this.#sessionError = undefined;
    const session = connect('http://localhost', { createConnection: () => netConnect(this.#socketPath) });
    session.on('error', (err: Error) => {
      this.#sessionError = err;
    });
    this.#session = session;
    return session;
  }

  /** Calls `service.method(request)`; rejects with an AdminCallError. */
  call<Res>(service: ServerApiService, method: string, request: unknown, opts: { deadlineMs?: number } = {}): Promise<Res> {
    return this.callMethod<Res>(methodOf(service, method), request, opts);
  }

  /** Calls the unary method `m` (e.g. one of SPIRE's API, wire/spire/codecs); rejects with an AdminCallError. */
  callMethod<Res>(m: UnaryMethod, request: unknown, opts: { deadlineMs?: number } = {}): Promise<Res> {
    const body = m.requestSerialize(request);
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    const deadlineMs = opts.deadlineMs ?? 10_000;
    const session = this.#open();
    return new Promise<Res>((resolve, reject) => {
      let settled = false;
      const finish = (err: AdminCallError | null, res?: Res): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err !== null) reject(err);
        else resolve(res as Res);
      };
      const req = session.request({
        [constants.HTTP2_HEADER_METHOD]: 'POST',
        [constants.HTTP2_HEADER_PATH]: m.path,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${Math.max(1, Math.ceil(deadlineMs))}m`,
        'user-agent': 'mayfly-cli',
      });
      const timer = setTimeout(() => {
        req.close(constants.NGHTTP2_CANCEL);
        finish(new AdminCallError(DEADLINE_EXCEEDED, 'Deadline exceeded'));
      }, deadlineMs);
      const chunks: Buffer[] = [];
      let size = 0;
      let headers: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders = {};
      req.on('response', (h) => {
        headers = h;
      });
      req.on('trailers', (t) => {
        trailers = t;
      });
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 5 + MAX_RESPONSE_BYTES) {
          req.close(constants.NGHTTP2_CANCEL);
          finish(new AdminCallError(RESOURCE_EXHAUSTED, `response larger than ${MAX_RESPONSE_BYTES} bytes`));
          return;
        }
        chunks.push(c);
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        const cause = this.#sessionError ?? err;
        finish(new AdminCallError(UNAVAILABLE, `No connection established: ${(cause as NodeJS.ErrnoException).code ?? ''} ${cause.message}`.trim()));
      });
      req.on('close', () => {
        if (settled) return;
        if (this.#sessionError !== undefined && headers[':status'] === undefined) {
          const e = this.#sessionError as NodeJS.ErrnoException;
          finish(new AdminCallError(UNAVAILABLE, `No connection established: ${e.code ?? ''} ${e.message}`.trim()));
          return;
        }
        const httpStatus = headers[':status'] as number | undefined;
        // A trailers-only answer carries grpc-status in the headers.
        const statusRaw = trailers['grpc-status'] ?? headers['grpc-status'];
        const messageRaw = trailers['grpc-status'] !== undefined ? trailers['grpc-message'] : headers['grpc-message'];
        if (statusRaw === undefined) {
          finish(new AdminCallError(httpStatus === 200 || httpStatus === undefined ? UNAVAILABLE : UNKNOWN, httpStatus === undefined ? 'Connection dropped' : `no grpc-status (HTTP ${String(httpStatus)})`));
          return;
        }
        const code = Number(Array.isArray(statusRaw) ? statusRaw[0] : statusRaw);
        if (code !== 0) {
          finish(new AdminCallError(Number.isInteger(code) ? code : UNKNOWN, grpcMessage(messageRaw)));
          return;
        }
        const data = Buffer.concat(chunks);
        if (data.length < 5 || data[0] !== 0) {
          finish(new AdminCallError(INTERNAL, data.length < 5 ? 'no response message' : 'compressed response (not requested)'));
          return;
        }
        const len = data.readUInt32BE(1);
        if (data.length !== 5 + len) {
          finish(new AdminCallError(INTERNAL, 'response is not exactly one message'));
          return;
        }
        try {
          finish(null, m.responseDeserialize(data.subarray(5)) as Res);
        } catch (err) {
          finish(new AdminCallError(INTERNAL, `response does not decode: ${(err as Error).message}`));
        }
      });
      req.end(frame);
    });
  }

  close(): void {
    this.#session?.close();
    this.#session = undefined;
  }
}
