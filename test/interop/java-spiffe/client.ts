/**
 * @module test/interop/java-spiffe/client
 *
 * Builds (once) and locates the java-spiffe client (pom.xml and src/ beside this file): one
 * class that fetches an X.509-SVID with io.spiffe's `DefaultX509Source`. `.ci/run` resolves
 * the Maven dependencies and packages it; here `mvn -o package` rebuilds only when a source
 * is newer than the compiled class, falling back to an online build when the local Maven
 * repository lacks something. The JVM runs with `java -cp` (no Maven at test time).
 */
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const DIR = dirname(fileURLToPath(import.meta.url));
const CLASS_FILE = join(DIR, 'target', 'classes', 'mayfly', 'interop', 'FetchX509.class');
const CLASSPATH_FILE = join(DIR, 'target', 'classpath.txt');
const SOURCES = ['pom.xml', join('src', 'main', 'java', 'mayfly', 'interop', 'FetchX509.java')];
const exec = promisify(execFile);

async function mtime(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

async function upToDate(): Promise<boolean> {
  const built = Math.min((await mtime(CLASS_FILE)) ?? -1, (await mtime(CLASSPATH_FILE)) ?? -1);
  if (built < 0) return false;
  const sources = await Promise.all(SOURCES.map((f) => mtime(join(DIR, f))));
  return sources.every((m) => m !== undefined && m <= built);
}

let building: Promise<string[]> | undefined;

/** Builds if needed; resolves with the `java` arguments that run the client (before its own args). */
export function javaSpiffeCommand(): Promise<string[]> {
  building ??= (async () => {
    if (!(await upToDate())) {
      const mvn = (offline: boolean) =>
        exec('mvn', ['-q', '-B', ...(offline ? ['-o'] : []), 'package', '-DskipTests'], { cwd: DIR, maxBuffer: 16 * 1024 * 1024 });
      try {
        await mvn(true);
      } catch {
        try {
          await mvn(false);
        } catch (err) {
          const e = err as { stdout?: string; stderr?: string; message: string };
          throw new Error(`cannot build the java-spiffe client in ${DIR} (needs Maven and Maven Central): ${(e.stdout ?? '') + (e.stderr ?? '') || e.message}`, {
            cause: err,
          });
        }
      }
    }
    const cp = (await readFile(CLASSPATH_FILE, 'utf8')).trim();
    return ['-cp', `${join(DIR, 'target', 'classes')}:${cp}`, 'mayfly.interop.FetchX509'];
  })();
  return building;
}
