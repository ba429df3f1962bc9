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

/** The levels SPIRE's Logger API and `logger set -level` name (logrus's), most severe first. */
export const SPIRE_LOG_LEVELS = ['panic', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type SpireLogLevel = (typeof SPIRE_LOG_LEVELS)[number];

/** A running process's log level, changed without a restart (the server's Logger API). */
export interface LogLevelControl {
  /** The level logged at now. */
  current(): SpireLogLevel;
  /** The level the process was started with. */
  readonly launch: SpireLogLevel;
  set(level: SpireLogLevel): void;
}
