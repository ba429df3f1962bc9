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
 * The two messages are encoded by hand in wire/spire/health (the same codec the server's
 * admin socket uses): loading a proto file at start-up would cost more than the whole codec. The health check needs no security header and
 * attests nobody: it tells no identity, only whether the agent is serving. A NOT_SERVING
 * answer carries why in the trailing metadata `mayfly-not-serving-reason` (one line of
 * ASCII, e.g. that the server has been unreachable too long), which `checkHealthDetail`
 * returns and `mayfly-agent healthcheck` prints; other clients ignore it.
 */
import * as grpc from '@grpc/grpc-js';
import { decodeHealthCheckRequest, decodeHealthCheckResponse, encodeHealthCheckResponse, GRPC_HEALTH_SERVICE, HealthServingStatus } from '../wire/spire/health.js';

export const HEALTH_SERVICE = GRPC_HEALTH_SERVICE;

/** Trailing metadata key of a NOT_SERVING answer's reason. */
export const NOT_SERVING_REASON_KEY = 'mayfly-not-serving-reason';

/** `HealthCheckResponse.ServingStatus`. */
export const ServingStatus = HealthServingStatus;

/** Service names the check answers for: the server as a whole, and the Workload API. */
const KNOWN_SERVICES = new Set(['', 'SpiffeWorkloadAPI']);

export { decodeHealthCheckRequest, encodeHealthCheckResponse };

export function healthServiceDefinition(): grpc.ServiceDefinition {
  return {
    Check: {
      path: `/${HEALTH_SERVICE}/Check`,
      requestStream: false,
      responseStream: false,
      requestSerialize: () => Buffer.alloc(0),
      requestDeserialize: decodeHealthCheckRequest,
      responseSerialize: encodeHealthCheckResponse,
      responseDeserialize: decodeHealthCheckResponse,
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
