/**
 * @module test/reporters/watchdog
 *
 * A vitest reporter that keeps `npm test` from hanging silently. vitest's own timeouts stop a
 * test that awaits forever, but not a worker whose event loop is blocked, a file stuck before
 * its first test, or a process that will not exit after the run; CI then sees nothing until
 * its wall clock ends the job. This reporter runs in vitest's main process and:
 * - names every test (and every file without a running test) still in flight after
 *   `stallSeconds`, again each `stallSeconds` after that;
 * - when the whole run passes `budgetSeconds`, names everything in flight and exits 1;
 * - with `compact` (CI), prints one line per failed test as it fails and a short summary at
 *   the end instead of a line per file, so the first screenful of a CI log already holds
 *   what went wrong (CI shows only the beginning of a long log).
 */
import { readFileSync, readdirSync } from 'node:fs';
import type { Reporter, TestCase, TestModule, TestRunEndReason } from 'vitest/node';

export interface WatchdogOptions {
  /** A test or file in flight this long is named on stderr. */
  stallSeconds?: number;
  /** The run is ended (exit 1) when it takes longer than this. */
  budgetSeconds?: number;
  /** One line per failure instead of one per file, and a short summary. */
  compact?: boolean;
}

interface InFlight {
  readonly since: number;
  warned: number;
}

const firstLine = (s: string): string => s.split('\n', 1)[0]!.slice(0, 300);

export default class WatchdogReporter implements Reporter {
  readonly #stallMs: number;
  readonly #budgetMs: number;
  readonly #compact: boolean;
  readonly #modules = new Map<TestModule, InFlight>();
  readonly #tests = new Map<TestCase, InFlight>();
  readonly #started = Date.now();
  readonly #slow: { file: string; ms: number }[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(options: WatchdogOptions = {}) {
    this.#stallMs = (options.stallSeconds ?? 300) * 1000;
    this.#budgetMs = (options.budgetSeconds ?? 45 * 60) * 1000;
    this.#compact = options.compact ?? false;
  }

  onInit(): void {
    this.#timer = setInterval(() => this.#check(), Math.min(10_000, this.#stallMs));
    this.#timer.unref();
  }

  onTestModuleStart(module: TestModule): void {
    this.#modules.set(module, { since: Date.now(), warned: 0 });
  }

  onTestModuleEnd(module: TestModule): void {
    this.#modules.delete(module);
    const ms = module.diagnostic().duration;
    this.#slow.push({ file: module.relativeModuleId, ms });
    if (this.#compact && module.state() === 'failed' && module.children.size === 0) {
      for (const e of module.errors()) this.#fail(`${module.relativeModuleId}: ${firstLine(e.message ?? String(e))}`);
    }
  }

  onTestCaseReady(test: TestCase): void {
    this.#tests.set(test, { since: Date.now(), warned: 0 });
  }

  onTestCaseResult(test: TestCase): void {
    this.#tests.delete(test);
    const result = test.result();
    if (this.#compact && result.state === 'failed') {
      const error = result.errors?.[0];
      const frame = error?.stacks?.find((f) => !f.file.includes('node_modules'));
      const at = frame === undefined ? '' : ` (at ${frame.file.replace(`${process.cwd()}/`, '')}:${frame.line})`;
      this.#fail(`${test.module.relativeModuleId} > ${test.fullName}: ${firstLine(error?.message ?? 'failed')}${at}`);
    }
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>, errors: ReadonlyArray<{ message?: string }>, reason: TestRunEndReason): void {
    clearInterval(this.#timer);
    if (!this.#compact) return;
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        if (s === 'passed') passed++;
        else if (s === 'failed') failed++;
        else skipped++;
      }
    }
    for (const e of errors) this.#fail(`unhandled error: ${firstLine(e.message ?? 'unknown')}`);
    const slowest = [...this.#slow].sort((a, b) => b.ms - a.ms).slice(0, 5).map((s) => `${s.file} ${(s.ms / 1000).toFixed(1)} s`).join(', ');
    const seconds = ((Date.now() - this.#started) / 1000).toFixed(0);
    process.stdout.write(`\nvitest: ${reason}: ${modules.length} files, ${passed} tests passed, ${failed} failed, ${skipped} skipped or todo, ${errors.length} unhandled errors, ${seconds} s\nslowest files: ${slowest}\n`);
  }

  #fail(line: string): void {
    process.stdout.write(`FAIL ${line}\n`);
  }

  #inFlight(now: number, all: boolean): string[] {
    const lines: string[] = [];
    const busy = new Set<TestModule>();
    for (const [test, f] of this.#tests) {
      busy.add(test.module);
      if (all || now - f.since - f.warned * this.#stallMs >= this.#stallMs) {
        f.warned++;
        lines.push(`test running for ${((now - f.since) / 1000).toFixed(0)} s: ${test.module.relativeModuleId} > ${test.fullName}`);
      }
    }
    for (const [module, f] of this.#modules) {
      if (busy.has(module)) continue;
      if (all || now - f.since - f.warned * this.#stallMs >= this.#stallMs) {
        f.warned++;
        const done = [...module.children.allTests()].filter((t) => t.result().state !== 'pending').length;
        lines.push(`file running for ${((now - f.since) / 1000).toFixed(0)} s, ${done} of its tests reported, none in flight (an import, a hook, or a blocked event loop in its worker): ${module.relativeModuleId}`);
      }
    }
    return lines;
  }

  #check(): void {
    const now = Date.now();
    if (now - this.#started > this.#budgetMs) {
      const lines = this.#inFlight(now, true);
      const children = descendants(process.pid);
      process.stderr.write(`\nwatchdog: the test run passed its budget of ${this.#budgetMs / 1000} s; in flight:\n${lines.map((l) => `  ${l}`).join('\n') || '  nothing (the run is not exiting)'}\n`);
      killAll(children);
      process.exit(1);
    }
    for (const l of this.#inFlight(now, false)) process.stderr.write(`watchdog: ${l}\n`);
  }
}

function killAll(children: readonly { pid: number; cmd: string }[]): void {
  for (const c of children) {
    process.stderr.write(`  killed process ${c.pid}: ${c.cmd}\n`);
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Every process below `root` (Linux /proc), with its command line, deepest last. */
function descendants(root: number): { pid: number; cmd: string }[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: { pid: number; cmd: string }[] = [];
  const walk = (p: number): void => {
    for (const [pid, pp] of parent) {
      if (pp !== p) continue;
      let cmd = '?';
      try {
        cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 200);
      } catch {
        // gone meanwhile
      }
      out.push({ pid, cmd });
      walk(pid);
    }
  };
  walk(root);
  return out;
}
