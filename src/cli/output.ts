/**
 * @module cli/output
 *
 * SPIRE's `-output` flag: `pretty` (human text, the default) or `json` (exactly one JSON
 * document on stdout, so `| jq` always works). Commands build both forms and call `emit`.
 */
import { Option, type Command } from 'commander';
import type { CliIo } from './flags.js';
import { CliUsageError } from './flags.js';

export type OutputFormat = 'pretty' | 'json';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['pretty', 'json'];

/** Parses an `-output` value; CliUsageError on anything but `pretty` or `json`. */
export function parseOutputFormat(value: string): OutputFormat {
  if ((OUTPUT_FORMATS as readonly string[]).includes(value)) return value as OutputFormat;
  throw new CliUsageError(`invalid -output value ${JSON.stringify(value)}: use pretty or json`);
}

/** `--output <format>` (SPIRE: `-output json`), default `pretty`. */
export function outputOption(): Option {
  return new Option('--output <format>', 'output format: pretty or json').default('pretty').argParser(parseOutputFormat);
}

/** Adds the output option to `cmd` and returns it. */
export function withOutputOption(cmd: Command): Command {
  return cmd.addOption(outputOption());
}

export interface Printable {
  /** The JSON document (serialised with 2-space indent, one document per run). */
  json: unknown;
  /** Human text; a trailing newline is added when missing. */
  text: string | (() => string);
}

/** Prints `result` in `format`. */
export function emit(io: Pick<CliIo, 'out'>, format: OutputFormat, result: Printable): void {
  if (format === 'json') {
    io.out(`${JSON.stringify(result.json, null, 2)}\n`);
    return;
  }
  const text = typeof result.text === 'function' ? result.text() : result.text;
  io.out(text.endsWith('\n') || text === '' ? text : `${text}\n`);
}
