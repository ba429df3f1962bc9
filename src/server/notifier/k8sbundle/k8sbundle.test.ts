/**
 * `Notifier "k8sbundle"` end to end: a real ServerRunner configured from HCL with the
 * notifier, publishing to a STAND-IN Kubernetes API server (./testing.ts: HTTPS, bearer
 * token, the ConfigMap GET and merge-PATCH wire format and its 409 on a stale
 * resourceVersion, because no cluster runs where these tests do). The ConfigMap gets the
 * served bundle at start and again when an operator rotates the CA; other keys of the
 * ConfigMap are left alone; a missing ConfigMap or a concurrent writer is retried.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryJournalStore } from '../../../ca/journal-store.js';
import { MemoryKeyManager } from '../../../ca/key-manager.js';
import { ServerCa } from '../../../ca/server-ca.js';
import { parseConfigText } from '../../../config/hcl.js';
import { tempDirs } from '../../../securefs/testing.js';
import { parsePemCertificates } from '../../../spiffe/x509/pem.js';
import { adminSocketClients, unaryCall, type ServerApiClients } from '../../client.js';
import { resolveServerConfig } from '../../config.js';
import { createServerLogger } from '../../observability.js';
import { ServerRunner } from '../../runner.js';
import { K8sBundleNotifier } from './k8sbundle.js';
import { StandInKubernetesApiServer } from './testing.js';

const dirs = tempDirs('mayfly-k8sbundle-');
afterAll(() => dirs.cleanup());

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const hex = (pem: string | undefined): string[] => (pem === undefined ? [] : parsePemCertificates(pem).map((c) => c.toString('hex')));

describe('Notifier "k8sbundle" on a running server', () => {
  const api = new StandInKubernetesApiServer();
  let runner: ServerRunner;
  let admin: ServerApiClients;
  const published = (): string | undefined => api.configMap('mayfly', 'mayfly-bundle')?.data?.['bundle.crt'];
  const served = async (): Promise<string[]> =>
    (await unaryCall<{ x509_authorities: Buffer[] }>(admin.Bundle, 'GetBundle', {})).x509_authorities.map((c) => c.toString('hex'));

  beforeAll(async () => {
    await api.start();
    api.putConfigMap('mayfly', 'mayfly-bundle', { 'README': 'kept' });
    const base = dirs.make();
    const file = parseConfigText('plugins {\n  Notifier "k8sbundle" {\n    plugin_data {\n      namespace = "mayfly"\n    }\n  }\n}\n');
    const settings = resolveServerConfig(file, { dataDir: join(base, 'data'), socketPath: join(base, 'private', 'api.sock'), bindPort: 0, trustDomain: 'example.org' });
    settings.bindAddress = '127.0.0.1';
    settings.metrics.enabled = false;
    runner = new ServerRunner({ settings, logger: createServerLogger('error'), kubernetesApiServer: async () => api.clientConfig(), drainMs: 200 });
    await runner.start();
    admin = adminSocketClients(settings.socketPath);
  }, 60_000);

  afterAll(async () => {
    admin?.close();
    await runner?.stop();
    await api.stop();
  }, 60_000);

  it('writes the served bundle to the ConfigMap when the server starts, leaving its other keys alone', async () => {
    // start() resolves once the first publish was tried: it is there already.
    expect(hex(published())).toEqual(await served());
    expect(api.configMap('mayfly', 'mayfly-bundle')?.data?.README).toBe('kept');
    expect(api.requests).toContain('PATCH /api/v1/namespaces/mayfly/configmaps/mayfly-bundle');
  });

  it('writes it again when the CA rotates, so new nodes bootstrap with the new root', async () => {
    const before = hex(published());
    await unaryCall(admin.LocalAuthority, 'PrepareX509Authority', {});
    const now = await served();
    expect(now).toHaveLength(before.length + 1);
    await until(() => JSON.stringify(hex(published())) === JSON.stringify(now), 'the rotated bundle in the ConfigMap');
  });
});

describe('K8sBundleNotifier against the stand-in API server', () => {
  const api = new StandInKubernetesApiServer();
  const warnings: string[] = [];
  const logger = { info() {}, warn: (_f: Record<string, unknown>, m: string) => void warnings.push(m) };
  let ca: ServerCa;
  const source = () => ({ bundle: () => ca.getBundle(), onChange: () => () => undefined });
  const roots = (): string[] => ca.getBundle().x509Authorities.map((c) => c.toString('hex'));

  beforeAll(async () => {
    await api.start();
    ca = new ServerCa({ trustDomain: 'example.org', keyManager: new MemoryKeyManager(), journal: new MemoryJournalStore() });
    await ca.init();
  });
  afterAll(() => api.stop());

  it('reads again and wins when another writer changed the ConfigMap in between (409)', async () => {
    api.putConfigMap('ns1', 'bundle');
    api.concurrentWrites = 2;
    const n = new K8sBundleNotifier({ namespace: 'ns1', configMap: 'bundle', configMapKey: 'bundle.crt', apiServer: async () => api.clientConfig(), logger, retryMs: 50 });
    await n.start(source());
    await n.stop();
    expect(hex(api.configMap('ns1', 'bundle')?.data?.['bundle.crt'])).toEqual(roots());
    expect(api.requests.filter((r) => r === 'PATCH /api/v1/namespaces/ns1/configmaps/bundle')).toHaveLength(3);
  });

  it('logs and retries while the ConfigMap does not exist, and publishes once it does', async () => {
    const n = new K8sBundleNotifier({ namespace: 'ns2', configMap: 'bundle', configMapKey: 'ca.pem', apiServer: async () => api.clientConfig(), logger, retryMs: 50 });
    await n.start(source());
    try {
      expect(warnings.at(-1)).toBe('could not publish the trust bundle to the ConfigMap; will retry');
      api.putConfigMap('ns2', 'bundle');
      await until(() => api.configMap('ns2', 'bundle')?.data?.['ca.pem'] !== undefined, 'the retried publish');
      expect(hex(api.configMap('ns2', 'bundle')?.data?.['ca.pem'])).toEqual(roots());
    } finally {
      await n.stop();
    }
  });

  it('is refused by an API server that does not accept its token', async () => {
    api.putConfigMap('ns3', 'bundle');
    const bad = { ...api.clientConfig(), tokenPath: join(dirs.make(), 'none') };
    const n = new K8sBundleNotifier({ namespace: 'ns3', configMap: 'bundle', configMapKey: 'k', apiServer: async () => bad, logger, retryMs: 60_000 });
    await n.start(source());
    await n.stop();
    expect(api.configMap('ns3', 'bundle')?.data?.k).toBeUndefined();
  });
});

describe('Notifier "k8sbundle" configuration', () => {
  const problems = (pluginData: string): string => {
    const file = parseConfigText(`plugins {\n  Notifier "k8sbundle" {\n    plugin_data {\n${pluginData}\n    }\n  }\n}\n`);
    try {
      resolveServerConfig(file, { dataDir: '/nonexistent' });
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  };

  it("takes SPIRE's keys, defaults to deploy/k8s's ConfigMap, and refuses what it cannot do", () => {
    const s = resolveServerConfig(parseConfigText('plugins {\n  Notifier "k8sbundle" {\n    plugin_data {}\n  }\n}\n'), { dataDir: '/nonexistent' });
    expect(s.plugins.find((p) => p.kind === 'Notifier')?.config).toEqual({ namespace: 'mayfly', configMap: 'mayfly-bundle', configMapKey: 'bundle.crt' });
    expect(problems('kube_config_file_path = "/kubeconfig"')).toContain('plugins.Notifier.k8sbundle.plugin_data.kube_config_file_path is not supported: only the in-cluster API server is supported');
    expect(problems('namespace = "Not_A_Namespace"')).toContain('plugins.Notifier.k8sbundle.plugin_data.namespace must be a Kubernetes namespace name');
    expect(problems('config_map_key = "a/b"')).toContain('config_map_key must be a ConfigMap key');
    expect(problems('configmap = "x"')).toContain('unknown key plugins.Notifier.k8sbundle.plugin_data.configmap');
  });
});
