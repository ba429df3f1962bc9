/**
 * `mayfly-agent validate` and `-expandEnv` as real processes: a valid file is said to be
 * valid, `$VAR`s are expanded only when asked (by `validate` and by `run`), and a broken
 * file is one `Error:` line naming the key, exit code 2 (invalid input).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'mayfly-agent.js');

function agent(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 30_000, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-agent-validate-'));
  writeFileSync(
    join(dir, 'agent.conf'),
    `agent {
  trust_domain = "\${MAYFLY_TEST_TD}"
  data_dir = "${join(dir, 'data')}"
  server_address = "127.0.0.1"
  server_port = "$MAYFLY_TEST_PORT"
  insecure_bootstrap = true
}
plugins {
  NodeAttestor "join_token" { plugin_data {} }
  WorkloadAttestor "unix" { plugin_data {} }
}
`,
  );
  writeFileSync(join(dir, 'bad.conf'), 'agent {\n  trust_domain = "example.org"\n  sever_port = 1\n}\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mayfly-agent validate', () => {
  it('says a valid file is valid, expanding $VARs with -expandEnv', async () => {
    const env = { MAYFLY_TEST_TD: 'example.org', MAYFLY_TEST_PORT: '8081' };
    const ok = await agent(['validate', '-config', join(dir, 'agent.conf'), '-expandEnv'], env);
    expect(ok).toMatchObject({ code: 0, stdout: 'Configuration is valid.\n' });
    const json = await agent(['validate', '-config', join(dir, 'agent.conf'), '-expandEnv', '-output', 'json'], env);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: true });

    const unexpanded = await agent(['validate', '-config', join(dir, 'agent.conf')], env);
    expect(unexpanded.code).toBe(2);
    expect(unexpanded.stderr).toMatch(/^Error: .*agent\.conf: config line 2.*interpolation.*\(or pass -expandEnv to take \$VAR/);
  });

  it('names the broken key with one Error line and exit code 2', async () => {
    const r = await agent(['validate', '-config', join(dir, 'bad.conf')]);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
    expect(r.stderr).toMatch(/^Error: .*agent\.sever_port/);
    expect((await agent(['validate'])).stderr).toBe('Error: -config is required\n');
  });

  it('run -expandEnv expands the same way (the expanded value is the one refused)', async () => {
    const r = await agent(['run', '-config', join(dir, 'agent.conf'), '-expandEnv'], { MAYFLY_TEST_TD: 'example.org', MAYFLY_TEST_PORT: 'notaport' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/agent\.server_port.*notaport/);
  });
});
