/**
 * @module test/interop/py-spiffe/venv
 *
 * The Python virtual environment holding py-spiffe (PyPI `spiffe`, pinned with its
 * dependencies in requirements.txt beside this file), at `.venv/` (git-ignored). `.ci/run`
 * creates it; a test creates it too when it is missing or does not hold the pinned version,
 * so a fresh clone needs only `python3` and PyPI.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const DIR = dirname(fileURLToPath(import.meta.url));
export const PY_SPIFFE_DIR = DIR;
export const VENV_PYTHON = join(DIR, '.venv', 'bin', 'python');
export const FETCH_SCRIPT = join(DIR, 'fetch.py');
const exec = promisify(execFile);

async function pinnedVersion(): Promise<string> {
  const req = await readFile(join(DIR, 'requirements.txt'), 'utf8');
  const m = /^spiffe==(\S+)$/m.exec(req);
  if (!m?.[1]) throw new Error('requirements.txt does not pin spiffe==<version>');
  return m[1];
}

async function installedVersion(): Promise<string | undefined> {
  try {
    const { stdout } = await exec(VENV_PYTHON, ['-c', 'import importlib.metadata as m; print(m.version("spiffe"))']);
    return stdout.trim();
  } catch {
    return undefined;
  }
}

let ensuring: Promise<string> | undefined;

/** Creates or repairs the venv when needed; resolves with its python's path. */
export function ensurePySpiffe(): Promise<string> {
  ensuring ??= (async () => {
    const want = await pinnedVersion();
    if ((await installedVersion()) === want) return VENV_PYTHON;
    try {
      await exec('python3', ['-m', 'venv', join(DIR, '.venv')]);
      await exec(VENV_PYTHON, ['-m', 'pip', 'install', '-q', '--disable-pip-version-check', '-r', join(DIR, 'requirements.txt')], {
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`cannot set up py-spiffe ${want} in ${DIR}/.venv (needs python3 with venv and PyPI): ${e.stderr?.trim() || e.message}`, { cause: err });
    }
    const got = await installedVersion();
    if (got !== want) throw new Error(`py-spiffe venv holds spiffe ${got ?? 'nothing'}, wanted ${want}`);
    return VENV_PYTHON;
  })();
  return ensuring;
}
