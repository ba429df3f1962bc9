/**
 * @module cli/config-env
 *
 * SPIRE's `-expandEnv`: `$VAR` and `${VAR}` in a config file replaced from the environment
 * before it is parsed, for both binaries (`run` and `validate`).
 */
import { loadConfigFile } from '../config/file.js';
import { ConfigError, type HclObject } from '../config/hcl.js';

/** `$VAR` and `${VAR}` replaced from the environment (SPIRE's -expandEnv); unset → empty. */
export function expandEnv(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_m, a: string | undefined, b: string | undefined) => env[(a ?? b) as string] ?? '');
}

/**
 * Reads `-config` (each error naming the file), expanding `$VAR`s from `env` when `expand`
 * (`-expandEnv`). A `${...}` the file holds without `-expandEnv` is refused with the flag
 * that would expand it named.
 */
export async function readConfigFile(path: string, expand: boolean, env: NodeJS.ProcessEnv): Promise<HclObject> {
  try {
    return await loadConfigFile(path, expand ? (text) => expandEnv(text, env) : undefined);
  } catch (err) {
    if (!expand && err instanceof ConfigError && /interpolation/.test(err.message)) {
      throw new ConfigError(`${err.message} (or pass -expandEnv to take $VAR and \${VAR} from the environment)`);
    }
    throw err;
  }
}
