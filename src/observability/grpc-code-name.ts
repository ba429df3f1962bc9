/**
 * @module observability/grpc-code-name
 *
 * gRPC status names for numbers, with nothing heavy behind it (the CLI uses it on every
 * call; metrics.ts re-exports it), so importing it loads neither prom-client nor grpc-js.
 * The codes are fixed by the gRPC spec (doc/statuscodes.md); a test checks the table
 * against grpc-js's `status` enum.
 */
export const GRPC_CODE_NAMES: readonly string[] = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** `OK`, `INVALID_ARGUMENT`, ... for a gRPC status number. */
export function grpcCodeName(code: number): string {
  return GRPC_CODE_NAMES[code] ?? String(code);
}
