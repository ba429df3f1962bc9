/**
 * @module workloadapi/health
 *
 * `grpc.health.v1.Health/Check` on the Workload API socket, as SPIRE's agent serves it
 * there: `spire-agent healthcheck -socketPath <sock>` and Kubernetes gRPC probes call it
 * with an empty request (service `""`). SERVING only while the agent can serve workloads
 * (it holds a valid SVID and has its authorised entries), NOT_SERVING otherwise; a service
 * name other than `""` or the Workload API's is NOT_FOUND, as grpc-go's health server
 * answers. `Watch` is not offered (UNIMPLEMENTED).
 *
 * The two messages are encoded by hand (grpc/health/v1/health.proto: `HealthCheckRequest
 * { string service = 1; }`, `HealthCheckResponse { ServingStatus status = 1; }` with
 * UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3): loading a proto file at start-up
 * would cost more than the whole codec. The health check needs no security header and
 * attests nobody: it tells no identity, only whether the agent is serving. A NOT_SERVING
 * answer carries why in the trailing metadata `mayfly-not-serving-reason` (one line of
 * ASCII, e.g. that the server has been unreachable too long), which `checkHealthDetail`
 * returns and `mayfly-agent healthcheck` prints; other clients ignore it.
 */
import * as grpc from '@grpc/grpc-js';

export const HEALTH_SERVICE = 'grpc.health.v1.Health';

/** Trailing metadata key of a NOT_SERVING answer's reason. */
export const NOT_SERVING_REASON_KEY = 'mayfly-not-serving-reason';

/** `HealthCheckResponse.ServingStatus`. */
export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

/** Service names the check answers for: the server as a whole, and the Workload API. */
const KNOWN_SERVICES = new Set(['', 'SpiffeWorkloadAPI']);

/** Largest request accepted: a service name is short. */
const MAX_REQUEST_BYTES = 1024;

function readVarint(buf: Buffer, at: number): { value: number; next: number } {
  let value = 0;
  let shift = 0;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i] as number;
    if (shift < 28) value |= (b & 0x7f) << shift;
    else value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return { value, next: i + 1 };
  }
  throw new Error('malformed varint');
}

/** Decodes `HealthCheckRequest`: the `service` field, unknown fields skipped. */
export function decodeHealthCheckRequest(buf: Buffer): { service: string } {
  if (buf.length > MAX_REQUEST_BYTES) throw new Error(`request of ${buf.length} bytes (at most ${MAX_REQUEST_BYTES})`);
  let service = '';
  let at = 0;
  while (at < buf.length) {
    const tag = readVarint(buf, at);
    at = tag.next;
    const field = Math.floor(tag.value / 8);
    const wire = tag.value & 7;
    if (wire === 0) at = readVarint(buf, at).next;
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const len = readVarint(buf, at);
      const end = len.next + len.value;
      if (end > buf.length) throw new Error('truncated field');
      if (field === 1) service = buf.toString('utf8', len.next, end);
      at = end;
    } else throw new Error(`unsupported wire type ${wire}`);
    if (at > buf.length) throw new Error('truncated field');
  }
  return { service };
}

/** Encodes `HealthCheckResponse` (status 0 is the proto3 default: no bytes). */
export function encodeHealthCheckResponse(res: { status: number }): Buffer {
  return res.status === 0 ? Buffer.alloc(0) : Buffer.from([0x08, res.status]);
}

export function healthServiceDefinition(): grpc.ServiceDefinition {
  return {
    Check: {
      path: `/${HEALTH_SERVICE}/Check`,
      requestStream: false,
      responseStream: false,
      requestSerialize: () => Buffer.alloc(0),
      requestDeserialize: decodeHealthCheckRequest,
      responseSerialize: encodeHealthCheckResponse,
      responseDeserialize: (b: Buffer) => ({ status: b.length >= 2 ? (b[1] as number) : 0 }),
    },
  };
}

/** Metadata values must be printable ASCII: anything else becomes '?', and the line is bounded. */
function reasonValue(reason: string): string {
  return reason.replace(/[^\x20-\x7e]/g, '?').slice(0, 512);
}

/**
 * The Check handler; `serving()` says whether the agent can serve workloads now and
 * `reason()`, when given, why not.
 */
export function healthHandlers(serving: () => boolean, reason?: () => string | undefined): grpc.UntypedServiceImplementation {
  return {
    Check(call: grpc.ServerUnaryCall<{ service: string }, { status: number }>, callback: grpc.sendUnaryData<{ status: number }>) {
      const { service } = call.request;
      if (!KNOWN_SERVICES.has(service)) {
        callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${JSON.stringify(service)}` } as grpc.ServiceError);
        return;
      }
      let ok: boolean;
      try {
        ok = serving();
      } catch {
        ok = false;
      }
      if (ok) {
        callback(null, { status: ServingStatus.SERVING });
        return;
      }
      const trailer = new grpc.Metadata();
      let why: string | undefined;
      try {
        why = reason?.();
      } catch {
        why = undefined;
      }
      if (why !== undefined && why !== '') trailer.set(NOT_SERVING_REASON_KEY, reasonValue(why));
      callback(null, { status: ServingStatus.NOT_SERVING }, trailer);
    },
  };
}

/**
 * Calls `Health/Check` (service `""`) on a Workload API socket, as `spire-agent healthcheck`
 * does; resolves to the reported `ServingStatus`, rejects when the socket does not answer
 * within `timeoutMs`.
 */
export async function checkHealth(socketPath: string, timeoutMs: number): Promise<number> {
  return (await checkHealthDetail(socketPath, timeoutMs)).status;
}

/** As `checkHealth`, with the agent's reason when it is not serving (Mayfly's trailer). */
export function checkHealthDetail(socketPath: string, timeoutMs: number): Promise<{ status: number; reason?: string }> {
  const client = new grpc.Client(`unix://${socketPath}`, grpc.credentials.createInsecure());
  const check = healthServiceDefinition().Check as grpc.MethodDefinition<object, { status: number }>;
  return new Promise((resolve, reject) => {
    // grpc-js calls back before it emits 'status' (which carries the trailer): settle on 'status'.
    let outcome: { err: grpc.ServiceError | null; status?: number } | undefined;
    const call = client.makeUnaryRequest(
      check.path,
      () => Buffer.alloc(0),
      check.responseDeserialize,
      {},
      new grpc.Metadata(),
      { deadline: Date.now() + timeoutMs },
      (err, res) => {
        outcome = { err, status: res?.status ?? ServingStatus.UNKNOWN };
      },
    );
    call.on('status', (st: grpc.StatusObject) => {
      client.close();
      const err = outcome?.err ?? null;
      if (err !== null || outcome === undefined) {
        reject(new Error(`${grpc.status[st.code] ?? st.code}: ${st.details}`));
        return;
      }
      const v = st.metadata.get(NOT_SERVING_REASON_KEY)[0];
      resolve({ status: outcome.status ?? ServingStatus.UNKNOWN, ...(typeof v === 'string' ? { reason: v } : {}) });
    });
  });
}
