/**
 * @module cli/output
 *
 * SPIRE's `-output` flag: `pretty` (human text, the default) or `json` (exactly one JSON
 * document on stdout, so `| jq` always works). Commands build both forms and call `emit`.
 *
 * JSON is written as SPIRE's cliprinter writes it (it re-encodes protojson through a Go
 * map): keys sorted, nulls dropped, one compact line, `<`, `>`, `&`, U+2028 and U+2029
 * escaped as `\u003c`..., a trailing newline. The server commands shape the documents
 * themselves as SPIRE's messages (cli/spire-json).
 */
import { Option, type Command } from 'commander';
import type { CliIo } from './flags.js';
import { CliUsageError } from './flags.js';

/** `table` (one row per item) is Mayfly's, offered by commands that list many items (`entry show`). */
export type OutputFormat = 'pretty' | 'json' | 'table';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['pretty', 'json'];

function orList(formats: readonly string[]): string {
  return formats.length <= 2 ? formats.join(' or ') : `${formats.slice(0, -1).join(', ')} or ${formats[formats.length - 1] as string}`;
}

/** Parses an `-output` value; CliUsageError on anything but one of `formats` (default: pretty, json). */
export function parseOutputFormat(value: string, formats: readonly OutputFormat[] = OUTPUT_FORMATS): OutputFormat {
  if ((formats as readonly string[]).includes(value)) return value as OutputFormat;
  throw new CliUsageError(`invalid -output value ${JSON.stringify(value)}: use ${orList(formats)}`);
}

/** `--output <format>` (SPIRE: `-output json`), default `pretty`. */
export function outputOption(formats: readonly OutputFormat[] = OUTPUT_FORMATS): Option {
  return new Option('--output <format>', `output format: ${orList(formats)}`).default('pretty').argParser((v) => parseOutputFormat(v, formats));
}

/** Adds the output option to `cmd` and returns it. */
export function withOutputOption(cmd: Command, formats: readonly OutputFormat[] = OUTPUT_FORMATS): Command {
  return cmd.addOption(outputOption(formats));
}

/** Rows under a header, each column padded to its widest cell (the last column is not padded). */
export function tableText(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => rows.reduce((w, r) => Math.max(w, (r[c] ?? '').length), h.length));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, c) => (c === cells.length - 1 ? cell : cell.padEnd(widths[c] as number))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((x) => x !== null && x !== undefined).map(sortKeys);
  if (v !== null && typeof v === 'object' && !(v instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== null && x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

/** One JSON document as SPIRE's CLI writes it (see the module comment). */
export function spireJsonText(doc: unknown): string {
  const text = JSON.stringify(sortKeys(doc)).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `${text}\n`;
}

export interface Printable {
  /** The JSON document (one per run, written by `spireJsonText`). */
  json: unknown;
  /** Human text; a trailing newline is added when missing. */
  text: string | (() => string);
  /** `-output table` text, where the command offers it (else `text`). */
  table?: () => string;
}

/** Prints `result` in `format`. */
export function emit(io: Pick<CliIo, 'out'>, format: OutputFormat, result: Printable): void {
  if (format === 'json') {
    io.out(spireJsonText(result.json));
    return;
  }
  const text = format === 'table' && result.table ? result.table() : typeof result.text === 'function' ? result.text() : result.text;
  io.out(text.endsWith('\n') || text === '' ? text : `${text}\n`);
}
