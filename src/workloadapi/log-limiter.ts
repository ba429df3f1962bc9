/**
 * @module workloadapi/log-limiter
 *
 * Rate-limited logging for conditions a caller can cause at will.
 *
 * Threat: log amplification. Anyone who can reach the Workload API socket (it is 0777) can
 * make the agent log: a loop that connects and exits, resets connections, or calls with a
 * process that is gone before attestation. One line per event, with a stack trace, let an
 * unprivileged user write tens of MiB of logs in seconds (filling the disk, drowning real
 * warnings, costing CPU). So every such line goes through a `LogLimiter`: at most
 * `linesPerInterval` lines per cause per `intervalMs`; further lines of that cause are
 * counted, not written, and the next line of that cause after the interval (or `flush()`,
 * which the endpoint calls when it closes) is preceded by one summary line,
 * "suppressed K similar messages". Lines carry an error's message and code
 * (`errorFields`), never the error object, so no stack is written.
 *
 * Causes are fixed strings chosen in code (`'peer-credentials'`, `'over-uid-cap'`…), never
 * caller data, so the limiter's state stays a handful of entries.
 */

/** pino-compatible logging at the two levels the Workload API uses. */
export interface LevelLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface LogLimiterConfig {
  logger: LevelLogger;
  /** Lines written per cause per interval at most (default 10). */
  linesPerInterval?: number;
  /** Length of the interval, ms (default 60 s). */
  intervalMs?: number;
  /** Clock (default `() => new Date()`). */
  now?: () => Date;
}

export const DEFAULT_LOG_LINES_PER_INTERVAL = 10;
export const DEFAULT_LOG_INTERVAL_MS = 60_000;

type Level = 'debug' | 'warn';

interface CauseWindow {
  start: number;
  written: number;
  suppressed: number;
  level: Level;
}

/** An error as log fields: its message and, when it has one, its code. Never its stack. */
export function errorFields(err: unknown): { error: string; code?: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? { error: err.message, code } : { error: err.message };
  }
  return { error: String(err) };
}

/** At most N lines per cause per interval, then one "suppressed K similar messages" line. */
export class LogLimiter {
  readonly linesPerInterval: number;
  readonly intervalMs: number;
  private readonly logger: LevelLogger;
  private readonly now: () => Date;
  private readonly windows = new Map<string, CauseWindow>();

  constructor(config: LogLimiterConfig) {
    if (typeof config !== 'object' || config === null) throw new TypeError('LogLimiter needs a config object');
    const { logger } = config;
    if (typeof logger !== 'object' || logger === null || typeof logger.debug !== 'function' || typeof logger.warn !== 'function') {
      throw new TypeError('LogLimiter: logger must have debug() and warn()');
    }
    this.linesPerInterval = config.linesPerInterval ?? DEFAULT_LOG_LINES_PER_INTERVAL;
    this.intervalMs = config.intervalMs ?? DEFAULT_LOG_INTERVAL_MS;
    if (!Number.isSafeInteger(this.linesPerInterval) || this.linesPerInterval < 1) {
      throw new TypeError('LogLimiter: linesPerInterval must be a positive integer');
    }
    if (!Number.isSafeInteger(this.intervalMs) || this.intervalMs < 1) throw new TypeError('LogLimiter: intervalMs must be a positive integer (ms)');
    if (config.now !== undefined && typeof config.now !== 'function') throw new TypeError('LogLimiter: now must be a function returning a Date');
    this.logger = logger;
    this.now = config.now ?? (() => new Date());
  }

  debug(cause: string, fields: object, msg: string): void {
    this.log('debug', cause, fields, msg);
  }

  warn(cause: string, fields: object, msg: string): void {
    this.log('warn', cause, fields, msg);
  }

  /** Writes the summary line of every cause with suppressed lines, and starts afresh. */
  flush(): void {
    for (const [cause, w] of this.windows) this.summarise(cause, w);
    this.windows.clear();
  }

  private log(level: Level, cause: string, fields: object, msg: string): void {
    const t = this.now().getTime();
    let w = this.windows.get(cause);
    // A clock that goes backwards also starts a new interval (never a window that never ends).
    if (w !== undefined && (t - w.start >= this.intervalMs || t < w.start)) {
      this.summarise(cause, w);
      w = undefined;
    }
    if (w === undefined) {
      w = { start: t, written: 0, suppressed: 0, level };
      this.windows.set(cause, w);
    }
    w.level = level;
    if (w.written >= this.linesPerInterval) {
      w.suppressed++;
      return;
    }
    w.written++;
    this.logger[level](fields, msg);
  }

  private summarise(cause: string, w: CauseWindow): void {
    if (w.suppressed === 0) return;
    this.logger[w.level](
      { cause, suppressed: w.suppressed, intervalMs: this.intervalMs },
      `suppressed ${w.suppressed} similar messages (${cause}: more than ${this.linesPerInterval} in ${this.intervalMs} ms)`,
    );
    w.suppressed = 0;
  }
}
