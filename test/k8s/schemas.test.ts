/**
 * Every manifest under deploy/k8s (the base and its variants) validates against
 * Kubernetes' own OpenAPI schemas, strictly (an unknown or misspelt field is an error),
 * as the API server would judge it. The validator is PyPI `kubernetes-validate`, which
 * ships those schemas, so nothing is downloaded here; it lives in its own venv
 * (test/k8s/validate/install.sh, which `.ci/run` calls). Missing, this test fails with
 * that command; it never skips.
 *
 * Not Kubernetes API objects, so not in its schemas, and listed here by kind:
 * - `Kustomization` (kustomize's own file: `kubectl apply -k` reads it, the cluster never
 *   sees it);
 * - `ServiceMonitor` (prometheus-operator's CRD: its schema is the operator's, installed
 *   with it; test/k8s/manifests.test.ts checks that it selects the server's metrics port).
 * Any other kind without a schema fails.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEPLOY = join(repo, 'deploy', 'k8s');
const VALIDATOR = join(repo, 'test', 'k8s', 'validate', '.venv', 'bin', 'kubernetes-validate');
const KUBERNETES_VERSION = '1.37.0';
const NOT_IN_KUBERNETES_SCHEMAS = new Set(['Kustomization', 'ServiceMonitor']);

function validator(): string {
  if (!existsSync(VALIDATOR)) throw new Error(`${VALIDATOR} is missing: install it once with bash test/k8s/validate/install.sh (.ci/run does)`);
  return VALIDATOR;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((n) => (statSync(join(dir, n)).isDirectory() ? yamlFiles(join(dir, n)) : /\.ya?ml$/.test(n) ? [join(dir, n)] : []))
    .sort();
}

function kindsOf(file: string): string[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJSON() as { kind?: string } | null)
    .filter((o): o is { kind?: string } => o !== null)
    .map((o) => String(o.kind));
}

interface Verdict {
  code: number;
  passed: string[];
  errors: string[];
  noSchema: { file: string; kind: string }[];
}

function validate(files: string[]): Promise<Verdict> {
  return new Promise((resolve, reject) => {
    execFile(validator(), ['--strict', '-k', KUBERNETES_VERSION, ...files], { maxBuffer: 16 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1;
      if (code === -1) return reject(err);
      const lines = `${stdout}\n${stderr}`.split('\n');
      resolve({
        code,
        passed: lines.filter((l) => / passed for resource /.test(l)),
        errors: lines.filter((l) => /^ERROR /.test(l)),
        noSchema: lines.flatMap((l) => {
          const m = /^WARN (\S+) Couldn't find schema for kind (\S+) /.exec(l);
          return m ? [{ file: m[1]!, kind: m[2]! }] : [];
        }),
      });
    });
  });
}

describe('deploy/k8s against Kubernetes schemas', () => {
  it(`validates every manifest strictly against Kubernetes ${KUBERNETES_VERSION}`, async () => {
    const files = yamlFiles(DEPLOY);
    const objects = files.flatMap((f) => kindsOf(f).map((kind) => ({ file: f, kind })));
    const expectedPasses = objects.filter((o) => !NOT_IN_KUBERNETES_SCHEMAS.has(o.kind)).length;
    const v = await validate(files);
    expect(v.errors).toEqual([]);
    expect(v.code).toBe(0);
    expect(v.noSchema.filter((n) => !NOT_IN_KUBERNETES_SCHEMAS.has(n.kind)).map((n) => `${relative(repo, n.file)}: ${n.kind}`)).toEqual([]);
    expect(v.passed.length).toBe(expectedPasses);
    expect(expectedPasses).toBeGreaterThan(10);
  });

  it('is strict: a misspelt field and a wrong type each fail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-k8s-schema-'));
    const deployment = (spec: string, port: string): string =>
      [
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata: { name: x }',
        'spec:',
        spec,
        '  selector: { matchLabels: { a: b } }',
        '  template:',
        '    metadata: { labels: { a: b } }',
        `    spec: { containers: [{ name: c, image: i, ports: [{ containerPort: ${port} }] }] }`,
        '',
      ].join('\n');
    try {
      const misspelt = join(dir, 'misspelt.yaml');
      const wrongType = join(dir, 'wrong-type.yaml');
      writeFileSync(misspelt, deployment('  replica: 1', '8080'));
      writeFileSync(wrongType, deployment('  replicas: 1', '"http"'));
      const v = await validate([misspelt, wrongType]);
      expect(v.code).not.toBe(0);
      expect(v.errors).toHaveLength(2);
      expect(v.errors[0]).toMatch(/misspelt\.yaml .*replica/);
      expect(v.errors[1]).toMatch(/wrong-type\.yaml .*containerPort/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
