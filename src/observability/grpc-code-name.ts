/**
 * @module observability/grpc-code-name
 *
 * gRPC status names for numbers, with nothing heavy behind it (the CLI uses it on every
 * call; metrics.ts re-exports it), so importing it does not load prom-client.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';

const CODE_NAMES = new Map<number, string>(Object.entries(GrpcStatus).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v as number, k]));

/** `OK`, `INVALID_ARGUMENT`, ... for a gRPC status number. */
export function grpcCodeName(code: number): string {
  return CODE_NAMES.get(code) ?? String(code);
}
