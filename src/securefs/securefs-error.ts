/**
 * @module securefs/securefs-error
 *
 * The codes securefs raises (stable: never rename one), carried by `SecureFsError`
 * (`ownership.ts`).
 */
export type SecureFsErrorCode = 'ERR_FILE_PERMISSIONS' | 'ERR_FILE_NOT_REGULAR' | 'ERR_FILE_NOT_DIRECTORY' | 'ERR_PATH_UNTRUSTED';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<SecureFsErrorCode, 'securefs'> {}
}
