/**
 * @module test/interop/global-setup
 *
 * Vitest global setup: compiles the go-spiffe judge once before any test file runs, so
 * `npm test` on a fresh clone builds it and the interop test files only start it.
 */
import { buildJudge } from './go-spiffe/judge.js';

export default async function setup(): Promise<void> {
  await buildJudge();
}
