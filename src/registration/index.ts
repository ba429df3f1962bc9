/**
 * @module registration
 *
 * Registration entries and selectors: the model and its validation.
 */
export * from './selector.js';
export * from './entry.js';
export * from './template.js';
