/**
 * @module cli/cli-error
 *
 * The codes the command lines raise (stable: never rename one), carried by `CliUsageError`
 * (`flags.ts`).
 */
export type CliErrorCode = 'ERR_CLI_USAGE';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<CliErrorCode, 'cli'> {}
}
