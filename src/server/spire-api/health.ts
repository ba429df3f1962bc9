/**
 * @module server/spire-api/health
 *
 * `grpc.health.v1.Health/Check` on the server's endpoints, which `spire-server healthcheck
 * -socketPath` calls on the admin socket (service `""`). The verdict is Mayfly's own
 * `Health/Check` (the datastore answers and the CA has a bundle): SERVING or NOT_SERVING.
 * A service name other than `""` is NOT_FOUND, as grpc-go's health server answers for a
 * service it was never told about. Public, as SPIRE's: it tells no identity.
 */
import type { sendUnaryData, ServerUnaryCall, ServiceDefinition, ServiceError, UntypedServiceImplementation } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  decodeHealthCheckRequest,
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  encodeHealthCheckResponse,
  GRPC_HEALTH_SERVICE,
  HealthServingStatus,
} from '../../wire/spire/health.js';
import { mayflyCaller } from './call.js';

export function grpcHealthServiceDefinition(): ServiceDefinition {
  return {
    Check: {
      path: `/${GRPC_HEALTH_SERVICE}/Check`,
      requestStream: false,
      responseStream: false,
      requestSerialize: encodeHealthCheckRequest,
      requestDeserialize: decodeHealthCheckRequest,
      responseSerialize: encodeHealthCheckResponse,
      responseDeserialize: decodeHealthCheckResponse,
    },
  };
}

/** Check over Mayfly's Health service (`mayflyHealth`, the same endpoint's). */
export function grpcHealthHandlers(mayflyHealth: UntypedServiceImplementation | undefined): UntypedServiceImplementation {
  return {
    Check(call: ServerUnaryCall<{ service: string }, { status: number }>, callback: sendUnaryData<{ status: number }>) {
      if (call.request.service !== '') {
        callback({ code: GrpcStatus.NOT_FOUND, details: 'unknown service' } as ServiceError);
        return;
      }
      mayflyCaller(mayflyHealth, call as ServerUnaryCall<unknown, unknown>)<{ status: string }>('Check', {}).then(
        (res) => callback(null, { status: res.status === 'SERVING' ? HealthServingStatus.SERVING : HealthServingStatus.NOT_SERVING }),
        () => callback(null, { status: HealthServingStatus.NOT_SERVING }),
      );
    },
  };
}
