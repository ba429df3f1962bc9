/**
 * @module registration/registration-error
 *
 * The codes registration raises (stable: never rename one), carried by `SelectorError`
 * (`selector.ts`) and `EntryError` (`entry.ts`); the datastore raises them too when a stored
 * record breaks the same rules.
 */
export type RegistrationErrorCode = 'ERR_SELECTOR_INVALID' | 'ERR_ENTRY_INVALID';

declare module '../spiffe/errors.js' {
  interface MayflyErrorCodes extends Record<RegistrationErrorCode, 'registration'> {}
}
