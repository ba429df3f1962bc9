/**
 * @module observability/logger
 *
 * The process logger of both binaries: pino, one JSON object per line on stderr (stdout
 * stays free for command output). Neutral ground, so the agent binary loads no server
 * module to log (the server's metrics stay in server/observability).
 *
 * Levels are written by name (`"level":"info"`, as SPIRE's logrus JSON does), not pino's
 * numbers. pino's own `pid` is the process's; a caller's pid belongs under `caller_pid`.
 */
import { pino, type Logger } from 'pino';
import { SPIRE_LOG_LEVELS, type LogLevel, type LogLevelControl, type SpireLogLevel } from '../config/log-level.js';

/** A pino logger writing JSON lines to `destination` (stderr by default). */
export function createLogger(level: LogLevel = 'info', destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/**
 * The level of `logger` as the server's Logger API changes it; the launch level is the one
 * `logger` has now. pino has no `panic`: it logs at `fatal` then, and `current()` still
 * says `panic` (what the operator set). Children made with `logger.child()` keep the level
 * they were made with; the processes log through the root logger.
 */
export function pinoLevelControl(logger: Logger): LogLevelControl {
  const launch: SpireLogLevel = (SPIRE_LOG_LEVELS as readonly string[]).includes(logger.level) ? (logger.level as SpireLogLevel) : 'panic';
  let named = launch;
  return {
    launch,
    current: () => named,
    set(level: SpireLogLevel) {
      logger.level = level === 'panic' ? 'fatal' : level;
      named = level;
    },
  };
}
