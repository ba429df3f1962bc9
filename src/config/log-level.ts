/**
 * @module config/log-level
 *
 * `log_level` / `-logLevel` as SPIRE spells it (DEBUG, INFO, WARN or WARNING, ERROR; any case).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVELS: Record<string, LogLevel> = { debug: 'debug', info: 'info', warn: 'warn', warning: 'warn', error: 'error' };

/** The level `v` names, or undefined when it names none. */
export function parseLogLevel(v: string): LogLevel | undefined {
  return Object.hasOwn(LEVELS, v.toLowerCase()) ? LEVELS[v.toLowerCase()] : undefined;
}
