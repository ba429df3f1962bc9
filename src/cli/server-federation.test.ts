/**
 * `mayfly-server federation ...` in-process against a real server (LevelDB, admin socket):
 * SPIRE's flags, pretty text and JSON; a table of invocations refused with one line and
 * the documented exit code; `bundle list|show|delete` on the bundle a relationship brought.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bundle } from '../spiffe/bundle/bundle.js';
import { TrustDomain } from '../spiffe/id.js';
import { pemEncodeCertificates } from '../spiffe/x509/pem.js';
import { makeTestCa } from '../spiffe/x509/testing.js';
import { BundleRefusal } from '../federation/refusal.js';
import type { FederationControl } from '../server/ports.js';
import { startTestServer, type TestServer } from '../server/testing.js';
import { EXIT_CODES } from './cli-error.js';
import { runProgram } from './flags.js';
import { buildServerProgram } from './server-program.js';

let server: TestServer;
let dir: string;
const refreshed: string[] = [];
let relationshipChanges = 0;
let refreshFails: Error | undefined;
const fetcher: FederationControl = {
  refresh: async (td) => {
    refreshed.push(td);
    if (refreshFails !== undefined) throw refreshFails;
  },
  relationshipsChanged: () => {
    relationshipChanges++;
  },
};

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const program = await buildServerProgram({ out: (t) => void out.push(t), err: (t) => void err.push(t), env: {} });
  const code = await runProgram(program, [...argv, '-socketPath', server.adminSocketPath]);
  return { code, out: out.join(''), err: err.join('') };
}

const peerCa = makeTestCa({ trustDomain: 'peer.test' });
let pemPath: string;
let spiffePath: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mayfly-cli-fed-'));
  server = await startTestServer({ trustDomain: 'example.org', keyManager: 'memory', federation: fetcher });
  pemPath = join(dir, 'peer.pem');
  writeFileSync(pemPath, pemEncodeCertificates([peerCa.certificate]));
  spiffePath = join(dir, 'peer.json');
  writeFileSync(spiffePath, new Bundle({ trustDomain: TrustDomain.parse('peer.test'), x509Authorities: [peerCa.certificate], sequence: 7, refreshHintSeconds: 60 }).toJson());
}, 30_000);

afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('mayfly-server federation', () => {
  it('creates, lists, shows, updates, refreshes and deletes relationships as SPIRE prints them', async () => {
    const web = await run('federation', 'create', '-trustDomain', 'web.test', '-bundleEndpointURL', 'https://web.test/bundle', '-bundleEndpointProfile', 'https_web');
    expect(web).toEqual({
      code: 0,
      out: '\nTrust domain              : web.test\nBundle endpoint URL       : https://web.test/bundle\nBundle endpoint profile   : https_web\n',
      err: '',
    });
    const changesBefore = relationshipChanges;
    const spiffe = await run(
      'federation', 'create', '-trustDomain', 'peer.test', '-bundleEndpointURL', 'https://127.0.0.1:8443', '-bundleEndpointProfile', 'https_spiffe',
      '-endpointSpiffeID', 'spiffe://peer.test/spire/server', '-trustDomainBundlePath', spiffePath, '-trustDomainBundleFormat', 'spiffe', '-output', 'json',
    );
    expect(spiffe.code, spiffe.err).toBe(0);
    const der = peerCa.certificate.toString('base64');
    const peerJson = {
      bundle_endpoint_url: 'https://127.0.0.1:8443',
      https_spiffe: { endpoint_spiffe_id: 'spiffe://peer.test/spire/server' },
      trust_domain: 'peer.test',
      trust_domain_bundle: { jwt_authorities: [], refresh_hint: '60', sequence_number: '7', trust_domain: 'peer.test', x509_authorities: [{ asn1: der, tainted: false }] },
    };
    expect(JSON.parse(spiffe.out)).toEqual({ results: [{ status: { code: 0, message: 'OK' }, federation_relationship: peerJson }] });
    expect(relationshipChanges).toBe(changesBefore + 1);
    // The bootstrap bundle is stored: `bundle list|show` see it.
    const listed = await run('bundle', 'list', '-id', 'spiffe://peer.test');
    expect(listed.out).toBe(pemEncodeCertificates([peerCa.certificate]));

    const list = await run('federation', 'list', '-output', 'json');
    expect(list.out).toBe(
      `${JSON.stringify({
        federation_relationships: [peerJson, { bundle_endpoint_url: 'https://web.test/bundle', https_web: {}, trust_domain: 'web.test' }],
        next_page_token: '',
      })}\n`,
    );
    expect((await run('federation', 'list')).out).toBe(
      'Found 2 federation relationships\n\nTrust domain              : peer.test\nBundle endpoint URL       : https://127.0.0.1:8443\nBundle endpoint profile   : https_spiffe\nEndpoint SPIFFE ID        : spiffe://peer.test/spire/server\n\nTrust domain              : web.test\nBundle endpoint URL       : https://web.test/bundle\nBundle endpoint profile   : https_web\n',
    );
    expect((await run('federation', 'show', '-trustDomain', 'web.test')).out).toBe(
      'Found a federation relationship with trust domain web.test:\n\nTrust domain              : web.test\nBundle endpoint URL       : https://web.test/bundle\nBundle endpoint profile   : https_web\n',
    );

    const upd = await run('federation', 'update', '-trustDomain', 'web.test', '-bundleEndpointURL', 'https://web.test/v2', '-bundleEndpointProfile', 'https_spiffe', '-endpointSpiffeID', 'spiffe://web.test/srv');
    expect(upd.code, upd.err).toBe(0);
    expect(JSON.parse((await run('federation', 'show', '-id', 'spiffe://web.test', '-output', 'json')).out)).toEqual({
      bundle_endpoint_url: 'https://web.test/v2',
      https_spiffe: { endpoint_spiffe_id: 'spiffe://web.test/srv' },
      trust_domain: 'web.test',
    });

    expect(await run('federation', 'refresh', '-id', 'peer.test')).toEqual({ code: 0, out: 'Bundle refreshed\n', err: '' });
    expect(refreshed).toEqual(['peer.test']);
    expect((await run('federation', 'refresh', '-id', 'peer.test', '-output', 'json')).out).toBe('{"code":0,"message":"OK"}\n');
    // A refused fetch: the peer's reason, not the admin socket's, and exit 1.
    refreshFails = new BundleRefusal('connect_failed', 'bundle endpoint https://127.0.0.1:8443 of peer.test: cannot connect (ECONNREFUSED)');
    expect(await run('federation', 'refresh', '-id', 'peer.test')).toEqual({
      code: EXIT_CODES.failed,
      out: '',
      err: 'Error: failed to refresh bundle: bundle endpoint https://127.0.0.1:8443 of peer.test: cannot connect (ECONNREFUSED) (FAILED_PRECONDITION)\n',
    });
    refreshFails = undefined;

    expect(await run('federation', 'delete', '-id', 'web.test')).toEqual({ code: 0, out: 'federation relationship deleted.\n', err: '' });
    expect((await run('federation', 'show', '-trustDomain', 'web.test')).code).toBe(EXIT_CODES.notFound);
    expect(await run('federation', 'refresh', '-id', 'web.test')).toEqual({ code: EXIT_CODES.notFound, out: '', err: 'Error: there is no federation relationship with trust domain "web.test"\n' });

    // The relationship's bundle is a federated bundle like any other.
    expect((await run('federation', 'delete', '-id', 'peer.test')).code).toBe(0);
    expect((await run('bundle', 'list', '-id', 'spiffe://peer.test')).code).toBe(0);
    expect(await run('bundle', 'delete', '-id', 'spiffe://peer.test')).toMatchObject({ code: 0, out: 'bundle deleted.\n' });
  });

  it('creates from a SPIRE -data file (PEM and SPIFFE bundles inline, Go-style key case)', async () => {
    const data = join(dir, 'rels.json');
    writeFileSync(
      data,
      JSON.stringify({
        federationRelationships: [
          { trustDomain: 'd1.test', bundleEndpointURL: 'https://d1.test/bundle', bundleEndpointProfile: 'https_web' },
          {
            trustDomain: 'peer.test',
            bundleEndpointURL: 'https://peer.test/bundle',
            bundleEndpointProfile: 'https_spiffe',
            endpointSpiffeID: 'spiffe://peer.test/spire/server',
            trustDomainBundle: pemEncodeCertificates([peerCa.certificate]),
            trustDomainBundleFormat: 'pem',
          },
        ],
      }),
    );
    const r = await run('federation', 'create', '-data', data);
    expect(r.code, r.err).toBe(0);
    expect(r.out.match(/Trust domain {14}: /g)).toHaveLength(2);
    expect((await server.datastore.getFederationRelationship('peer.test'))?.endpointSpiffeId).toBe('spiffe://peer.test/spire/server');
    // A second create of the same trust domains: ALREADY_EXISTS per item, summarised.
    const again = await run('federation', 'create', '-data', data);
    expect(again.code).toBe(EXIT_CODES.failed);
    expect(again.err).toBe(
      'Failed to create the federation relationship with d1.test (code: ALREADY_EXISTS, msg: "a federation relationship with d1.test already exists; update it instead")\n' +
        'Failed to create the federation relationship with peer.test (code: ALREADY_EXISTS, msg: "a federation relationship with peer.test already exists; update it instead")\n' +
        'Error: failed to create 2 of 2 federation relationships\n',
    );
    for (const td of ['d1.test', 'peer.test']) await run('federation', 'delete', '-id', td);
  });

  const base = ['federation', 'create', '-trustDomain', 'bad.test', '-bundleEndpointProfile', 'https_web'];
  it.each([
    ['our own trust domain', ['federation', 'create', '-trustDomain', 'example.org', '-bundleEndpointURL', 'https://example.org/', '-bundleEndpointProfile', 'https_web'], "example.org is the server's own trust domain"],
    ['an http URL', [...base, '-bundleEndpointURL', 'http://bad.test/'], 'scheme must be https'],
    ['userinfo in the URL', [...base, '-bundleEndpointURL', 'https://u:p@bad.test/'], 'userinfo is not allowed'],
    ['a query in the URL', [...base, '-bundleEndpointURL', 'https://bad.test/?x=1'], 'a query is not allowed'],
    ['a fragment in the URL', [...base, '-bundleEndpointURL', 'https://bad.test/#x'], 'a fragment is not allowed'],
    ['no URL', base, 'bundle endpoint URL is required'],
    ['an unknown profile', ['federation', 'create', '-trustDomain', 'bad.test', '-bundleEndpointURL', 'https://bad.test/', '-bundleEndpointProfile', 'acme'], 'unknown bundle endpoint profile "acme"'],
    ['https_spiffe without endpoint ID', ['federation', 'create', '-trustDomain', 'bad.test', '-bundleEndpointURL', 'https://bad.test/', '-bundleEndpointProfile', 'https_spiffe'], 'needs the endpoint SPIFFE ID'],
    ['a bad endpoint ID', ['federation', 'create', '-trustDomain', 'bad.test', '-bundleEndpointURL', 'https://bad.test/', '-bundleEndpointProfile', 'https_spiffe', '-endpointSpiffeID', 'bad.test/x'], 'endpoint SPIFFE ID'],
    ['no trust domain', ['federation', 'create', '-bundleEndpointURL', 'https://bad.test/', '-bundleEndpointProfile', 'https_web'], 'trust domain is required'],
    ['a bad trust domain', ['federation', 'create', '-trustDomain', 'Bad_TD!', '-bundleEndpointURL', 'https://bad.test/', '-bundleEndpointProfile', 'https_web'], '-trustDomain'],
    ['-data with relationship flags', ['federation', 'create', '-data', '/nonexistent', '-trustDomain', 'bad.test'], "when 'data' flag is set"],
    ['an unreadable -data file', ['federation', 'create', '-data', '/nonexistent/rels.json'], 'cannot read -data'],
    ['a bundle for a missing file', [...base, '-bundleEndpointURL', 'https://bad.test/', '-trustDomainBundlePath', '/nonexistent/b.pem'], 'cannot read -trustDomainBundlePath'],
    ['a bad bundle format', [...base, '-bundleEndpointURL', 'https://bad.test/', '-trustDomainBundlePath', '/x', '-trustDomainBundleFormat', 'der'], '-trustDomainBundleFormat must be one of pem, spiffe'],
    ['delete without -id', ['federation', 'delete'], '-id is required'],
    ['update of our own trust domain', ['federation', 'update', '-trustDomain', 'example.org', '-bundleEndpointURL', 'https://example.org/', '-bundleEndpointProfile', 'https_web'], "own trust domain"],
  ])('refuses %s in one line with exit code 2', async (_why, argv, message) => {
    const r = await run(...argv);
    expect(r.code, r.err).toBe(EXIT_CODES.invalidInput);
    expect(r.out).toBe('');
    expect(r.err.split('\n').filter((l) => l !== '')).toHaveLength(1);
    expect(r.err).toMatch(/^Error: /);
    expect(r.err).toContain(message);
    expect((await server.datastore.listFederationRelationships()).items).toEqual([]);
  });

  it('refuses a bundle file that does not parse in its format, and deleting an unknown relationship', async () => {
    const wrong = await run(...base, '-bundleEndpointURL', 'https://bad.test/', '-trustDomainBundlePath', pemPath, '-trustDomainBundleFormat', 'spiffe');
    expect(wrong.code).toBe(EXIT_CODES.invalidInput);
    expect(wrong.err).toMatch(/^Error: the spiffe bundle for bad\.test is invalid: .*\n$/);
    expect(await server.datastore.getFederationRelationship('bad.test')).toBeUndefined();
    const gone = await run('federation', 'delete', '-id', 'nobody.test');
    expect(gone.code).toBe(EXIT_CODES.notFound);
    expect(gone.err).toMatch(/^Error: failed to delete the federation relationship with nobody\.test: no federation relationship with nobody\.test \(NOT_FOUND\)\n$/);
  });
});
