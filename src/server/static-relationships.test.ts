/**
 * Static federation relationships (`server.federation.federates_with`) are in the datastore
 * once ServerRunner has started: `federation list` shows them, a restart with a changed
 * file replaces the stored one (the file wins), and relationships created through the API
 * are left alone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runProgram } from '../cli/flags.js';
import { buildServerProgram } from '../cli/server-program.js';
import { parseHcl } from '../config/hcl.js';
import { resolveServerConfig } from './config.js';
import { createServerLogger } from './observability.js';
import { ServerRunner } from './runner.js';

const dirs: string[] = [];
const runners: ServerRunner[] = [];
afterEach(async () => {
  for (const r of runners.splice(0)) await r.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const conf = (dir: string, url: string): string => `
server {
  trust_domain = "home.test"
  data_dir = "${join(dir, 'data')}"
  socket_path = "${join(dir, 'admin', 'api.sock')}"
  bind_port = 0
  federation {
    federates_with "partner.test" {
      bundle_endpoint_url = "${url}"
      bundle_endpoint_profile "https_spiffe" { endpoint_spiffe_id = "spiffe://partner.test/spire/server" }
    }
  }
}
`;

async function start(dir: string, url: string): Promise<ServerRunner> {
  const settings = resolveServerConfig(parseHcl(conf(dir, url)), {});
  settings.metrics.enabled = false;
  const runner = new ServerRunner({ settings, logger: createServerLogger('error') });
  runners.push(runner);
  await runner.start();
  return runner;
}

async function cli(dir: string, ...argv: string[]): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const code = await runProgram(await buildServerProgram({ out: (t) => void out.push(t), err: () => undefined, env: {} }), [...argv, '-socketPath', join(dir, 'admin', 'api.sock')]);
  return { code, out: out.join('') };
}

describe('static federation relationships', () => {
  it('are stored at start, listed, replaced by a changed file, and leave API-made ones alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mayfly-static-fed-'));
    dirs.push(dir);
    const first = await start(dir, 'https://partner.test:8443');
    const listed = await cli(dir, 'federation', 'list');
    expect(listed).toEqual({
      code: 0,
      out: 'Found 1 federation relationship\n\nTrust domain              : partner.test\nBundle endpoint URL       : https://partner.test:8443\nBundle endpoint profile   : https_spiffe\nEndpoint SPIFFE ID        : spiffe://partner.test/spire/server\n',
    });
    expect((await cli(dir, 'federation', 'create', '-trustDomain', 'other.test', '-bundleEndpointURL', 'https://other.test/', '-bundleEndpointProfile', 'https_web')).code).toBe(0);
    await first.stop();

    await start(dir, 'https://partner.test:9443/v2');
    const again = JSON.parse((await cli(dir, 'federation', 'list', '-output', 'json')).out) as { federation_relationships: { trust_domain: string; bundle_endpoint_url: string }[] };
    expect(again.federation_relationships.map((r) => [r.trust_domain, r.bundle_endpoint_url])).toEqual([
      ['other.test', 'https://other.test/'],
      ['partner.test', 'https://partner.test:9443/v2'],
    ]);
  }, 60_000);
});
