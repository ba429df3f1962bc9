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
import type { LogLevel } from '../config/log-level.js';

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
