/**
 * @module agent/logger
 *
 * The logging the agent does: pino-compatible (fields first, then the message), so the CLI
 * passes a pino logger and tests pass a recorder.
 */
export interface AgentLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  /** pino's: lets a costly debug line be skipped when debug is off. Absent: such lines are skipped. */
  isLevelEnabled?(level: string): boolean;
}

export const SILENT_AGENT_LOGGER: AgentLogger = { debug() {}, info() {}, warn() {}, error() {} };
