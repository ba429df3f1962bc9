/**
 * @module server/spire-api/stream
 *
 * What SPIRE's streaming agent RPCs (AttestAgent, SyncAuthorizedEntries) need that
 * Mayfly's unary and server-streaming wrappers do not give: a pull-style reader over a
 * bidirectional stream, a wrapper that authenticates and authorises the caller exactly as
 * Mayfly's `unary` does (server/auth) and ends the stream with the failure's gRPC status,
 * and the SPIRE translation of agent refusals (agent-status) for unary handlers too.
 */
import type { handleBidiStreamingCall, handleUnaryCall, ServerDuplexStream, ServiceError } from '@grpc/grpc-js';
import { authenticate, authorize, type Caller, type Transport } from '../auth.js';
import type { ApiContext } from '../context.js';
import { grpcCodeOf, toServiceError, tooLarge } from '../status.js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { toSpireError } from './agent-status.js';

/** Messages of a bidirectional stream, one `next()` at a time; null once the client half-closed. */
export class StreamReader<T> {
  readonly #queue: T[] = [];
  readonly #waiters: ((v: T | null) => void)[] = [];
  #ended = false;
  readonly #max: number;

  /** `max` bounds the messages buffered ahead of `next()` (a client that floods is cut off). */
  constructor(stream: ServerDuplexStream<T, unknown>, max = 16) {
    this.#max = max;
    stream.on('data', (m: T) => {
      const w = this.#waiters.shift();
      if (w !== undefined) w(m);
      else if (this.#queue.length < this.#max) this.#queue.push(m);
      else stream.emit('error', toServiceError(tooLarge(`more than ${this.#max} messages sent ahead of the server's answers`)));
    });
    const end = (): void => {
      this.#ended = true;
      for (const w of this.#waiters.splice(0)) w(null);
    };
    stream.on('end', end);
    stream.on('cancelled', end);
    stream.on('error', end);
  }

  next(): Promise<T | null> {
    const m = this.#queue.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

/** A bidirectional handler for attested agents only (Mayfly's `agent` policy), failures as SPIRE reports them. */
export function agentBidi<Req, Res>(
  ctx: ApiContext,
  t: Transport,
  method: string,
  fn: (caller: Extract<Caller, { kind: 'agent' }>, call: ServerDuplexStream<Req, Res>) => Promise<void>,
): handleBidiStreamingCall<Req, Res> {
  return (call: ServerDuplexStream<Req, Res>) => {
    void (async () => {
      try {
        const caller = await authenticate(ctx, t, call);
        authorize(caller, 'agent', method);
        if (caller.kind !== 'agent') throw new TypeError('unreachable: authorize admitted a non-agent');
        await fn(caller, call);
      } catch (err) {
        if (grpcCodeOf(err) === GrpcStatus.INTERNAL) ctx.logger.error({ method, err }, 'server API call failed');
        call.emit('error', toSpireError(toServiceError(err)));
      }
    })();
  };
}

/** `handler` with its failures as SPIRE reports them (agent-status). */
export function spireErrors<Req, Res>(handler: handleUnaryCall<Req, Res>): handleUnaryCall<Req, Res> {
  return (call, callback) =>
    handler(call, (err, res) => {
      if (err !== null && err !== undefined) callback(toSpireError(err as ServiceError));
      else callback(null, res);
    });
}
