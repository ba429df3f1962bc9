/**
 * @module cli/helper-reload
 *
 * How `mayfly-agent helper` tells a process that new files are in place:
 * - `cmd` with `renew_signal`: `cmd` is a long-running process (nginx with `daemon off`),
 *   started after the first write and sent the signal after every later one; if it has
 *   exited, it is started again (spiffe-helper's behaviour);
 * - `cmd` without `renew_signal`: `cmd` is a reload command run to completion after every
 *   write (`nginx -s reload`); a non-zero exit is logged and retried with backoff;
 * - `pid_file_name` with `renew_signal`: the pid read from that file gets the signal; a
 *   missing file or a dead pid is logged and retried with backoff.
 * A newer write replaces a pending retry. Nothing here touches the files: a failed reload
 * leaves the good files where they are.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { HelperConfig } from './helper-config.js';

export type HelperLog = (level: 'info' | 'warn' | 'error', message: string) => void;

export interface ReloaderConfig {
  config: HelperConfig;
  log: HelperLog;
  /** Retry delay for attempt n (n ≥ 1). */
  backoffMs: (attempt: number) => number;
}

export class Reloader {
  readonly #cfg: HelperConfig;
  readonly #log: HelperLog;
  readonly #backoffMs: (attempt: number) => number;
  #child: ChildProcess | undefined;
  #retry: NodeJS.Timeout | undefined;
  #generation = 0;
  #stopped = false;
  /** Reloads that succeeded (started, signalled, or the command exited 0). */
  succeeded = 0;
  failed = 0;

  constructor(c: ReloaderConfig) {
    this.#cfg = c.config;
    this.#log = c.log;
    this.#backoffMs = c.backoffMs;
  }

  /** The process started from `cmd` when it is long-running. */
  get child(): ChildProcess | undefined {
    return this.#child;
  }

  /** Tells the process about new files (first write: starts it). */
  notify(): void {
    if (this.#stopped) return;
    clearTimeout(this.#retry);
    const gen = ++this.#generation;
    void this.#attempt(gen, 1);
  }

  async #attempt(gen: number, attempt: number): Promise<void> {
    if (this.#stopped || gen !== this.#generation) return;
    let failure: string | undefined;
    try {
      failure = await this.#once();
    } catch (err) {
      failure = (err as Error).message;
    }
    if (this.#stopped || gen !== this.#generation) return;
    if (failure === undefined) {
      this.succeeded++;
      return;
    }
    this.failed++;
    const delay = this.#backoffMs(attempt);
    this.#log('error', `reload failed (attempt ${attempt}): ${failure}; the files stay in place, retrying in ${delay} ms`);
    this.#retry = setTimeout(() => void this.#attempt(gen, attempt + 1), delay);
  }

  /** One reload; a string says why it failed. */
  async #once(): Promise<string | undefined> {
    const { cmd, cmdArgs, renewSignal, pidFileName } = this.#cfg;
    if (pidFileName !== undefined && renewSignal !== undefined) {
      let pid: number;
      try {
        pid = Number(readFileSync(pidFileName, 'utf8').trim());
      } catch (err) {
        return `cannot read pid_file_name ${pidFileName}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      }
      if (!Number.isInteger(pid) || pid <= 1) return `pid_file_name ${pidFileName} does not hold a process id`;
      try {
        process.kill(pid, renewSignal);
      } catch (err) {
        return `cannot send ${renewSignal} to pid ${pid} (from ${pidFileName}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      }
      this.#log('info', `sent ${renewSignal} to pid ${pid}`);
      return undefined;
    }
    if (cmd === undefined) return undefined;
    if (renewSignal !== undefined) {
      const child = this.#child;
      if (child !== undefined && child.exitCode === null && child.signalCode === null) {
        child.kill(renewSignal);
        this.#log('info', `sent ${renewSignal} to ${cmd} (pid ${child.pid})`);
        return undefined;
      }
      return this.#startChild(cmd, cmdArgs);
    }
    return this.#runToEnd(cmd, cmdArgs);
  }

  #startChild(cmd: string, args: string[]): Promise<string | undefined> {
    return new Promise((resolve) => {
      const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
      child.once('error', (err) => resolve(`cannot start ${cmd}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      child.once('spawn', () => {
        this.#child = child;
        this.#log('info', `started ${cmd} (pid ${child.pid})`);
        child.once('exit', (code, sig) => {
          if (!this.#stopped) this.#log('warn', `${cmd} (pid ${child.pid}) exited with ${sig ?? `code ${code}`}; it is started again after the next update`);
        });
        resolve(undefined);
      });
    });
  }

  #runToEnd(cmd: string, args: string[]): Promise<string | undefined> {
    return new Promise((resolve) => {
      const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
      child.once('error', (err) => resolve(`cannot run ${cmd}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      child.once('exit', (code, sig) => {
        if (code === 0) {
          this.#log('info', `ran ${cmd}: exit 0`);
          resolve(undefined);
        } else resolve(`${cmd} exited with ${sig ?? `code ${code}`}`);
      });
    });
  }

  /** Stops retrying and ends the long-running child (SIGTERM, then SIGKILL after `graceMs`). */
  async stop(graceMs = 5000): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}
