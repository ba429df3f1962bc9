/**
 * @module config/file
 *
 * Reading a config file (HCL or JSON) into a tree, with the file named in every error.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, parseConfigText, type HclObject } from './hcl.js';

/**
 * Reads and parses a config file (HCL or JSON), passing its text through `transform`
 * first when given (the CLI's -expandEnv). ConfigError on any problem.
 */
export async function loadConfigFile(path: string, transform?: (text: string) => string): Promise<HclObject> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseConfigText(transform === undefined ? text : transform(text));
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${path}: ${err.message}`);
    throw err;
  }
}
