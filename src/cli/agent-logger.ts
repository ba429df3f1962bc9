/**
 * @module cli/agent-logger
 *
 * The `mayfly-agent` process's logger: pino, one JSON object per line on stderr (stdout
 * stays free for command output), the same shape as the server's (`createServerLogger` in
 * `src/server/observability.ts`; `agent-logger.test.ts` holds the two to one shape). It is
 * its own function so that the agent binary loads no server module (CONTRIBUTING.md: the
 * agent never imports the server).
 */
import { pino, type Level, type Logger } from 'pino';

/** A pino logger writing JSON lines to `destination` (stderr by default). */
export function createAgentLogger(level: Level = 'info', destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
