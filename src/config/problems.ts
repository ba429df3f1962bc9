/**
 * @module config/problems
 *
 * Every problem a config file has, collected and reported together in one error (an
 * operator fixes them in one pass instead of one start per typo). Bounded, so a hostile
 * file cannot grow the message without end.
 */
import { ConfigError } from './hcl.js';

/** Problems kept (the rest are dropped: fifty is plenty to fix first). */
export const MAX_PROBLEMS = 50;

export class Problems {
  readonly list: string[] = [];

  add(message: string): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push(message);
  }

  addAll(messages: readonly string[]): void {
    for (const m of messages) this.add(m);
  }

  /** Throws one ConfigError `<prefix>: <problem>; <problem>…` when any problem was found. */
  throwIfAny(prefix: string): void {
    if (this.list.length > 0) throw new ConfigError(`${prefix}: ${this.list.join('; ')}`);
  }
}
