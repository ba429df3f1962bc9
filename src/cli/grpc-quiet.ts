/**
 * @module cli/grpc-quiet
 *
 * Keeps the gRPC library's own log lines (`E 2026-... | subchannel ...`, written by
 * grpc-js to stderr at its default ERROR verbosity) off an operator's terminal: a client
 * command's stderr is its one `Error:` line, which already says what failed and what to
 * do. Asking for them explicitly (`GRPC_VERBOSITY` / `GRPC_NODE_VERBOSITY` /
 * `GRPC_TRACE` / `GRPC_NODE_TRACE` set) keeps grpc-js's own behaviour, for debugging.
 */
import { logVerbosity, setLogVerbosity } from '@grpc/grpc-js';

const ASKED = ['GRPC_VERBOSITY', 'GRPC_NODE_VERBOSITY', 'GRPC_TRACE', 'GRPC_NODE_TRACE'] as const;

/** Silences grpc-js's logging for this process unless `env` asks for it; true when silenced. */
export function quietGrpc(env: NodeJS.ProcessEnv): boolean {
  if (ASKED.some((k) => env[k] !== undefined && env[k] !== '')) return false;
  setLogVerbosity(logVerbosity.NONE);
  return true;
}
