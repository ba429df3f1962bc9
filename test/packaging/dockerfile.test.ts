/**
 * Issue 13, item 4: the Dockerfile the deploy/k8s manifests' image is built from. No Docker
 * engine runs in CI, so this checks the file against the manifests and the package instead
 * of building it: multi-stage, a non-root user matching the server StatefulSet's runAsUser,
 * both bins on PATH (the manifests run `args: ["mayfly-server", ...]` with no command),
 * the same Node major as `engines`, and deploy/k8s naming the Dockerfile.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (p: string): string => readFileSync(join(root, p), 'utf8');

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const lines = dockerfile.split('\n').filter((l) => !l.startsWith('#'));

  it('is multi-stage, ends as a non-root user matching the server StatefulSet, and puts both bins on PATH', () => {
    const froms = lines.filter((l) => l.startsWith('FROM '));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    const users = lines.filter((l) => l.startsWith('USER '));
    const finalUser = users.at(-1)?.slice(5).trim() ?? '';
    expect(finalUser).not.toMatch(/^(0|root)(:|$)/);
    const sts = read('deploy/k8s/server-statefulset.yaml');
    const runAsUser = /runAsUser: (\d+)/.exec(sts)?.[1];
    expect(finalUser.split(':')[0]).toBe(runAsUser);
    expect(lines.some((l) => l.startsWith('ENTRYPOINT'))).toBe(false);
    const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string>; engines: { node: string } };
    for (const [name, path] of Object.entries(pkg.bin)) expect(dockerfile).toContain(`/opt/mayfly/${path} /usr/local/bin/${name}`);
    const major = /(\d+)/.exec(pkg.engines.node)?.[1];
    for (const f of froms) expect(f).toMatch(new RegExp(`^FROM node:${major}-`));
    for (const m of ['server-statefulset.yaml', 'agent-daemonset.yaml']) {
      for (const args of read(`deploy/k8s/${m}`).matchAll(/args: \["([^"]+)"/g)) expect(Object.keys(pkg.bin)).toContain(args[1]);
    }
  });

  it('is named by deploy/k8s', () => {
    expect(read('deploy/k8s/kustomization.yaml')).toMatch(/built from the repository's Dockerfile/);
  });
});
