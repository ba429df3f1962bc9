/**
 * @module observability/log-destination
 *
 * Where and how the process logger writes: `log_format = "text"` turns each JSON line into
 * a logrus-style `time=… level=info msg="…" key=value` line; `log_file` appends to a file
 * opened without following a symlink (a planted link cannot redirect the log), mode 0600.
 */
import { constants, createWriteStream, openSync } from 'node:fs';
import { Writable } from 'node:stream';

export type LogFormat = 'json' | 'text';

function quote(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[\w./:@-]+$/.test(s) ? s : JSON.stringify(s);
}

/** One JSON log line as a logrus text line. */
export function textLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { time, level, msg, ...rest } = o;
  const head = [`time=${quote(time)}`, `level=${quote(level)}`, `msg=${JSON.stringify(String(msg ?? ''))}`];
  return [...head, ...Object.entries(rest).map(([k, v]) => `${k}=${quote(v)}`)].join(' ');
}

/** A stream that rewrites pino's JSON lines as text lines onto `out`. */
export function textStream(out: NodeJS.WritableStream): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) if (l !== '') out.write(textLine(l) + '\n');
      done();
    },
  });
}

/** Opens `path` for appending (created 0600, never through a symlink). */
export function openLogFile(path: string): NodeJS.WritableStream {
  const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  return createWriteStream('', { fd });
}

/** The destination for the configured format and file (stderr when no file). */
export function logDestination(opts: { format?: LogFormat; file?: string }, fallback: NodeJS.WritableStream = process.stderr): NodeJS.WritableStream {
  const base = opts.file !== undefined ? openLogFile(opts.file) : fallback;
  return opts.format === 'text' ? textStream(base) : base;
}
