/**
 * @module cli/cli-error
 *
 * The codes the command lines raise (stable: never rename one) and the exit codes scripts
 * branch on. `CliUsageError` (`flags.ts`) is a mistake on the command line; `CliCallError`
 * is a failed call, classified from its gRPC status (or the socket error) so that the
 * process exits with a distinct code per kind of failure (README, "Exit codes"):
 *
 * | exit | meaning | from |
 * |---|---|---|
 * | 0 | success | |
 * | 1 | any other failure | the server's other statuses, a partly failed batch of mixed reasons |
 * | 2 | invalid input | a bad flag, value, `-data` or config file; INVALID_ARGUMENT |
 * | 3 | not found | NOT_FOUND |
 * | 4 | permission denied | PERMISSION_DENIED, UNAUTHENTICATED, a socket the user may not open |
 * | 5 | unreachable | no socket, connection refused, UNAVAILABLE, DEADLINE_EXCEEDED |
 *
 * SPIRE exits 1 on every failure; these codes are all non-zero, so `if ! spire-server ...`
 * scripts keep working.
 */
import { MayflyError } from '../spiffe/errors.js';

export type CliErrorCode =
  | 'ERR_CLI_USAGE'
  | 'ERR_CLI_FAILED'
  | 'ERR_CLI_INVALID_INPUT'
  | 'ERR_CLI_NOT_FOUND'
  | 'ERR_CLI_PERMISSION_DENIED'
  | 'ERR_CLI_UNREACHABLE';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<CliErrorCode, 'cli'> {}
}

/** The documented exit codes. */
export const EXIT_CODES = {
  ok: 0,
  failed: 1,
  invalidInput: 2,
  notFound: 3,
  permissionDenied: 4,
  unreachable: 5,
} as const;

/** The exit code of each CLI error code. */
export const EXIT_CODE_OF: Readonly<Record<CliErrorCode, number>> = {
  ERR_CLI_USAGE: EXIT_CODES.invalidInput,
  ERR_CLI_FAILED: EXIT_CODES.failed,
  ERR_CLI_INVALID_INPUT: EXIT_CODES.invalidInput,
  ERR_CLI_NOT_FOUND: EXIT_CODES.notFound,
  ERR_CLI_PERMISSION_DENIED: EXIT_CODES.permissionDenied,
  ERR_CLI_UNREACHABLE: EXIT_CODES.unreachable,
};

/** gRPC status code → the CLI code it exits with. */
export function cliCodeOfGrpc(grpcCode: number): CliErrorCode {
  switch (grpcCode) {
    case 3: // INVALID_ARGUMENT
      return 'ERR_CLI_INVALID_INPUT';
    case 5: // NOT_FOUND
      return 'ERR_CLI_NOT_FOUND';
    case 7: // PERMISSION_DENIED
    case 16: // UNAUTHENTICATED
      return 'ERR_CLI_PERMISSION_DENIED';
    case 4: // DEADLINE_EXCEEDED
    case 14: // UNAVAILABLE
      return 'ERR_CLI_UNREACHABLE';
    default:
      return 'ERR_CLI_FAILED';
  }
}

/** A call that failed: its message says what happened; `exitCode` is the documented exit code. */
export class CliCallError extends MayflyError<CliErrorCode> {
  readonly exitCode: number;
  constructor(code: CliErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.exitCode = EXIT_CODE_OF[code];
  }
}
