/**
 * `mayfly-server` as real processes: `run` in a temp dir, then every client command over
 * the admin socket, hostile input, and a SIGTERM + restart on the same data directory.
 * The binary runs from dist/ (compiled by test/build.global-setup.ts).
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'mayfly-server.js');
const TD = 'example.test';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], opts: { input?: string; cwd?: string } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { cwd: opts.cwd, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

interface Running {
  child: ChildProcess;
  metricsPort: number;
  healthPort: number | undefined;
  exited: Promise<number | null>;
  logs: string[];
}

/** Starts `run` and resolves once the server logged its ports and /ready answers 200. */
async function startServer(args: string[], cwd: string): Promise<Running> {
  const child = spawn(process.execPath, [BIN, 'run', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const started = new Promise<{ metricsPort: number; healthPort: number | undefined }>((resolve, reject) => {
    const rl = createInterface({ input: child.stderr as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      logs.push(line);
      try {
        const j = JSON.parse(line) as { msg?: string; metricsPort?: number; healthPort?: number };
        if (j.msg === 'mayfly server started') resolve({ metricsPort: j.metricsPort as number, healthPort: j.healthPort });
      } catch {
        // a non-JSON line fails the JSON-logs test below
      }
    });
    void exited.then((code) => reject(new Error(`server exited with ${code}: ${logs.join('\n')}`)));
  });
  const { metricsPort, healthPort } = await started;
  for (let i = 0; i < 200; i++) {
    const r = await fetch(`http://127.0.0.1:${metricsPort}/ready`).catch(() => undefined);
    if (r?.status === 200) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  return { child, metricsPort, healthPort, exited, logs };
}

function oneErrorLine(r: Result): string {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^Error: /);
  return lines[0] as string;
}

describe('mayfly-server (real processes)', () => {
  let dir: string;
  let sock: string;
  let server: Running;
  const s = (...args: string[]): string[] => [...args, '-socketPath', sock];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mayfly-cli-'));
    sock = join(dir, 'private', 'api.sock');
    writeFileSync(
      join(dir, 'server.conf'),
      `server {
  bind_address = "127.0.0.1"
  bind_port = "0"
  socket_path = "${sock}"
  trust_domain = "${TD}"
  data_dir = "${join(dir, 'data')}"
  log_level = "INFO"
  ca_ttl = "24h"
  default_x509_svid_ttl = "1h"
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = "unused" } }
  KeyManager "disk" { plugin_data { keys_path = "${join(dir, 'data', 'keys.json')}" } }
  NodeAttestor "join_token" { plugin_data {} }
}
health_checks {
  listener_enabled = true
  bind_address = "127.0.0.1"
  bind_port = "0"
  live_path = "/alive"
  ready_path = "/isready"
}
telemetry { Prometheus { host = "127.0.0.1" port = 0 } }
`,
    );
    server = await startServer(['-config', join(dir, 'server.conf')], dir);
  });

  afterAll(async () => {
    if (server?.child.exitCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /live and /ready (both listeners) and writes JSON logs', async () => {
    const ready = await fetch(`http://127.0.0.1:${server.metricsPort}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, checks: { datastore: true, ca: true, listeners: true } });
    expect((await fetch(`http://127.0.0.1:${server.metricsPort}/live`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${server.healthPort}/alive`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${server.healthPort}/isready`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${server.healthPort}/metrics`)).status).toBe(404);
    for (const line of server.logs) expect(() => JSON.parse(line)).not.toThrow();
    const r = await cli(s('healthcheck'));
    expect(r).toMatchObject({ code: 0, stdout: 'Server is healthy.\n' });
  });

  it('generates join tokens', async () => {
    const r = await cli(s('token', 'generate', '-spiffeID', `spiffe://${TD}/host1`, '-ttl', '600'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Token: [0-9a-f-]{36}\n$/);
    const j = await cli([...s('token', 'generate'), '--output', 'json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ value: expect.any(String), expires_at: expect.stringMatching(/^[1-9]\d*$/) });
  });

  it('creates, shows, updates, counts and deletes entries (SPIRE and kebab spellings)', async () => {
    const created = await cli(
      s('entry', 'create', '-spiffeID', `spiffe://${TD}/web`, '-parentID', `spiffe://${TD}/host1`, '-selector', 'unix:uid:1000', '-selector', 'unix:gid:50',
        '-x509SVIDTTL', '300', '-dns', 'web.example.test', '-federatesWith', 'spiffe://fed.test', '-hint', 'frontend'),
    );
    expect(created.stderr).toBe('');
    expect(created.stdout).toMatch(/^Entry ID {9}: [\w-]+$/m);
    expect(created.stdout).toContain(`SPIFFE ID        : spiffe://${TD}/web\n`);
    expect(created.stdout).toContain('X509-SVID TTL    : 300\n');
    expect(created.stdout).toContain('Selector         : unix:uid:1000\n');
    const typo = await cli(s('entry', 'create', '-spiffeID', `spiffe://${TD}/typo`, '-parentID', `spiffe://${TD}/host1`, '-selector', 'unix:uids:1000'));
    expect(typo.code).toBe(0);
    expect(typo.stderr).toMatch(/^Warning: selector unix:uids:1000: the unix attestor emits no "uids" selectors.*\(did you mean uid/);
    const typoId = /^Entry ID +: (\S+)$/m.exec(typo.stdout)?.[1] as string;
    expect((await cli(s('entry', 'delete', '-entryID', typoId))).code).toBe(0);
    const kebab = await cli([
      'entry', 'create', `--spiffe-id=spiffe://${TD}/db`, '--parent-id', `spiffe://${TD}/host1`, '--selector', 'unix:uid:2000', '--socket-path', sock, '--output', 'json',
    ]);
    expect(kebab.code).toBe(0);
    expect(JSON.parse(kebab.stdout).results[0].status.code).toBe(0);

    const shown = await cli(s('entry', 'show', '-spiffeID', `spiffe://${TD}/web`, '-output', 'json'));
    const entries = JSON.parse(shown.stdout).entries;
    expect(entries).toHaveLength(1);
    // SPIRE's protojson shape: IDs as {trust_domain, path}, int64s as strings, zero values present.
    expect(entries[0]).toMatchObject({
      spiffe_id: { trust_domain: TD, path: '/web' },
      parent_id: { trust_domain: TD, path: '/host1' },
      x509_svid_ttl: 300,
      jwt_svid_ttl: 0,
      dns_names: ['web.example.test'],
      federates_with: ['fed.test'],
      hint: 'frontend',
      revision_number: '0',
      expires_at: '0',
      store_svid: false,
      admin: false,
      downstream: false,
      created_at: expect.stringMatching(/^[1-9]\d*$/),
    });
    expect(Object.keys(entries[0]).sort()).toEqual(
      ['admin', 'created_at', 'dns_names', 'downstream', 'expires_at', 'federates_with', 'hint', 'id', 'jwt_svid_ttl', 'parent_id', 'revision_number', 'selectors', 'spiffe_id', 'store_svid', 'x509_svid_ttl'],
    );
    expect(shown.stdout.split('\n')).toHaveLength(2); // one compact line, as SPIRE prints
    expect(entries[0].selectors).toEqual(expect.arrayContaining([{ type: 'unix', value: 'uid:1000' }, { type: 'unix', value: 'gid:50' }]));
    const id = entries[0].id as string;

    const bySel = JSON.parse((await cli(s('entry', 'show', '-selector', 'unix:uid:2000', '-selector', 'unix:uid:1000', '-matchSelectorsOn', 'any', '-output', 'json'))).stdout);
    expect(bySel.entries.map((e: { spiffe_id: { path: string } }) => e.spiffe_id.path)).toEqual(['/db', '/web']);

    const upd = await cli(s('entry', 'update', '-entryID', id, '-revision', '0', '-spiffeID', `spiffe://${TD}/web`, '-parentID', `spiffe://${TD}/host1`, '-selector', 'unix:uid:1001', '-output', 'json'));
    expect(upd.code).toBe(0);
    expect(JSON.parse(upd.stdout).results[0]).toMatchObject({ status: { code: 0 }, entry: { id, revision_number: '1', selectors: [{ type: 'unix', value: 'uid:1001' }] } });
    const stale = await cli(s('entry', 'update', '-entryID', id, '-revision', '0', '-spiffeID', `spiffe://${TD}/web`, '-parentID', `spiffe://${TD}/host1`, '-selector', 'unix:uid:1002'));
    expect(oneErrorLine(stale)).toMatch(/revision 1, not 0.*FAILED_PRECONDITION/);

    writeFileSync(
      join(dir, 'entries.json'),
      JSON.stringify({
        entries: [
          { spiffe_id: `spiffe://${TD}/batch1`, parent_id: `spiffe://${TD}/host1`, selectors: [{ type: 'unix', value: 'uid:1' }], x509_svid_ttl: 200 },
          { spiffeId: `spiffe://${TD}/batch2`, parentId: `spiffe://${TD}/host1`, selectors: [{ type: 'unix', value: 'uid:2' }], admin: true },
        ],
      }),
    );
    const batch = await cli(s('entry', 'create', '-data', join(dir, 'entries.json')));
    expect(batch.code).toBe(0);
    expect(batch.stdout.match(/^Entry ID/gm)).toHaveLength(2);
    // 5 = web, db, batch1, batch2 and the node alias made by `token generate -spiffeID`.
    expect((await cli(s('entry', 'count'))).stdout).toBe('5 registration entries\n');

    const del = await cli(s('entry', 'delete', '-entryID', id));
    expect(del).toMatchObject({ code: 0, stdout: `Deleted entry with ID: ${id}\n` });
    expect(JSON.parse((await cli(s('entry', 'count', '-output', 'json'))).stdout)).toEqual({ count: 4 });
    expect(oneErrorLine(await cli(s('entry', 'delete', '-entryID', id)))).toMatch(/NOT_FOUND/);
  });

  it('shows the bundle as PEM (openssl parses it) and in the SPIFFE format', async () => {
    const pem = await cli(s('bundle', 'show'));
    expect(pem.code).toBe(0);
    writeFileSync(join(dir, 'own.pem'), pem.stdout);
    const ossl = spawnSync('openssl', ['x509', '-in', join(dir, 'own.pem'), '-noout', '-ext', 'subjectAltName,basicConstraints'], { encoding: 'utf8' });
    expect(ossl.status).toBe(0);
    expect(ossl.stdout).toContain(`URI:spiffe://${TD}`);
    expect(ossl.stdout).toContain('CA:TRUE');
    const spiffe = JSON.parse((await cli(s('bundle', 'show', '-format', 'spiffe'))).stdout);
    expect(spiffe.keys.map((k: { use: string }) => k.use).sort()).toEqual(['jwt-svid', 'x509-svid']);
    expect(spiffe.spiffe_sequence).toEqual(expect.any(Number));
  });

  it('sets, lists and deletes a federated bundle, restricting deletion while entries use it', async () => {
    const pem = (await cli(s('bundle', 'show'))).stdout;
    const set = await cli(s('bundle', 'set', '-id', 'spiffe://fed.test'), { input: pem });
    expect(set).toMatchObject({ code: 0, stdout: 'bundle set.\n' });
    const spiffeJson = (await cli(s('bundle', 'show', '-format', 'spiffe'))).stdout;
    writeFileSync(join(dir, 'other.json'), spiffeJson);
    expect((await cli(s('bundle', 'set', '-id', 'spiffe://other.test', '-format', 'spiffe', '-path', join(dir, 'other.json')))).code).toBe(0);
    const list = await cli(s('bundle', 'list'));
    expect(list.stdout).toContain('* fed.test\n');
    expect(list.stdout).toContain('* other.test\n');
    expect(JSON.parse((await cli(s('bundle', 'list', '-id', 'spiffe://fed.test', '-output', 'json'))).stdout).trust_domain).toBe('fed.test');
    expect((await cli(s('bundle', 'count'))).stdout).toBe('3 bundles\n');

    await cli(s('entry', 'create', '-spiffeID', `spiffe://${TD}/fedclient`, '-parentID', `spiffe://${TD}/host1`, '-selector', 'unix:uid:77', '-federatesWith', 'fed.test'));
    expect(oneErrorLine(await cli(s('bundle', 'delete', '-id', 'spiffe://fed.test')))).toMatch(/federate with fed\.test.*-mode dissociate/);
    expect((await cli(s('bundle', 'delete', '-id', 'spiffe://fed.test', '-mode', 'dissociate'))).stdout).toBe('bundle deleted.\n');
    const after = JSON.parse((await cli(s('entry', 'show', '-spiffeID', `spiffe://${TD}/fedclient`, '-output', 'json'))).stdout);
    expect(after.entries[0].federates_with).toEqual([]);
    const own = JSON.parse((await cli(s('bundle', 'show', '-output', 'json'))).stdout);
    expect(own).toMatchObject({ trust_domain: TD, refresh_hint: expect.stringMatching(/^\d+$/), sequence_number: expect.stringMatching(/^\d+$/) });
    expect(own.x509_authorities[0]).toEqual({ asn1: expect.any(String), tainted: false });
    expect(own.jwt_authorities[0]).toEqual({ public_key: expect.any(String), key_id: expect.any(String), expires_at: expect.stringMatching(/^\d+$/), tainted: false });
    expect((await cli(s('bundle', 'delete', '-id', 'spiffe://other.test'))).code).toBe(0);
    expect((await cli(s('bundle', 'count'))).stdout).toBe('1 bundle\n');
  });

  it('mints X509-SVIDs to files (key 0600, openssl verifies) and JWT-SVIDs', async () => {
    const out = join(dir, 'svid');
    const r = await cli(s('x509', 'mint', '-spiffeID', `spiffe://${TD}/minted`, '-ttl', '10m', '-dns', 'minted.example.test', '-write', out));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`X509-SVID written to ${join(out, 'svid.pem')}`);
    expect(statSync(join(out, 'key.pem')).mode & 0o777).toBe(0o600);
    const verify = spawnSync('openssl', ['verify', '-CAfile', join(out, 'bundle.pem'), join(out, 'svid.pem')], { encoding: 'utf8' });
    expect(verify.stdout).toContain('OK');
    const cert = new X509Certificate(readFileSync(join(out, 'svid.pem')));
    expect(cert.subjectAltName).toContain(`URI:spiffe://${TD}/minted`);
    expect(cert.subjectAltName).toContain('DNS:minted.example.test');
    expect(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(join(out, 'key.pem'))))).toBe(true);
    const life = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 1000;
    expect(life).toBeLessThanOrEqual(600 + 60);

    const jwt = await cli(s('jwt', 'mint', '-spiffeID', `spiffe://${TD}/minted`, '-audience', 'aud1', '-audience', 'aud2', '-ttl', '60'));
    expect(jwt.code).toBe(0);
    const parts = jwt.stdout.trim().split('.');
    expect(parts).toHaveLength(3);
    const claims = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString());
    expect(claims).toMatchObject({ sub: `spiffe://${TD}/minted`, aud: ['aud1', 'aud2'] });
    expect(claims.exp - claims.iat).toBeLessThanOrEqual(60);
    const file = join(dir, 'token.jwt');
    expect((await cli(s('jwt', 'mint', '-spiffeID', `spiffe://${TD}/minted`, '-audience', 'a', '-write', file))).code).toBe(0);
    expect(readFileSync(file, 'utf8').split('.')).toHaveLength(3);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('x509 revoke: by serial and by SPIFFE ID, with exit codes for unknown, malformed and bad reason', async () => {
    const minted = JSON.parse((await cli(s('x509', 'mint', '-spiffeID', `spiffe://${TD}/to-revoke`, '-output', 'json'))).stdout) as { serial_number: string };
    const r = await cli(s('x509', 'revoke', '-serial', minted.serial_number, '-reason', 'keyCompromise'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Revoked 1 X509-SVID\(s\):\n\n/);
    expect(r.stdout).toContain(`  Serial number : ${minted.serial_number}\n  SPIFFE ID     : spiffe://${TD}/to-revoke\n  Entry ID      : (none)\n  Reason        : keyCompromise\n`);
    const again = JSON.parse((await cli(s('x509', 'revoke', '-spiffeID', `spiffe://${TD}/to-revoke`, '-output', 'json'))).stdout);
    expect(again.revoked).toEqual([expect.objectContaining({ serial_number: minted.serial_number, reason: 'keyCompromise', already_revoked: true })]);
    const unknown = await cli(s('x509', 'revoke', '-serial', 'ab'.repeat(16)));
    expect(unknown.code).toBe(3);
    expect(oneErrorLine(unknown)).toMatch(/no X509-SVID with serial 00abab.* was issued by trust domain/);
    const cases: [string[], number, RegExp][] = [
      [s('x509', 'revoke', '-serial', 'zz'), 2, /not a certificate serial number/],
      [s('x509', 'revoke', '-serial', minted.serial_number, '-reason', 'bogus'), 2, /-reason "bogus" is not one of unspecified, keyCompromise/],
      [s('x509', 'revoke'), 2, /give exactly one of -serial, -spiffeID and -entryID/],
      [s('x509', 'revoke', '-entryID', 'no-such-entry'), 3, /no unexpired X509-SVID was issued for entry/],
    ];
    for (const [args, code, re] of cases) {
      const out = await cli(args);
      expect(out.code, args.join(' ')).toBe(code);
      expect(oneErrorLine(out), args.join(' ')).toMatch(re);
    }
  });

  it('lists and counts agents (none yet)', async () => {
    expect((await cli(s('agent', 'list'))).stdout).toBe('No attested agents found\n');
    expect(JSON.parse((await cli(s('agent', 'list', '-output', 'json'))).stdout)).toEqual({ agents: [], next_page_token: '' });
    expect(JSON.parse((await cli(s('agent', 'count', '-output', 'json'))).stdout)).toEqual({ count: 0 });
    expect((await cli(s('agent', 'purge', '-dryRun'))).stdout).toBe('Found 0 expired agents\n');
  });

  it('shows, prepares and activates local X.509 authorities', async () => {
    const before = JSON.parse((await cli(s('localauthority', 'x509', 'show', '-output', 'json'))).stdout);
    expect(before.active.authority_id).toMatch(/\w+/);
    expect(before.prepared).toBeUndefined(); // unset messages are left out, as SPIRE prints them
    const prepared = await cli(s('localauthority', 'x509', 'prepare'));
    expect(prepared.stdout).toMatch(/^Prepared X\.509 authority:\n {2}Authority ID : (\w+)/);
    const newId = /Authority ID : (\w+)/.exec(prepared.stdout)?.[1] as string;
    const act = await cli(s('localauthority', 'x509', 'activate', '-authorityID', newId));
    expect(act.stdout).toContain(`Activated X.509 authority:\n  Authority ID : ${newId}`);
    const after = JSON.parse((await cli(s('localauthority', 'x509', 'show', '-output', 'json'))).stdout);
    expect(after.active.authority_id).toBe(newId);
    expect(after.old.authority_id).toBe(before.active.authority_id);
    expect(oneErrorLine(await cli(s('localauthority', 'x509', 'activate', '-authorityID', 'nope')))).toMatch(/NOT_FOUND|FAILED_PRECONDITION/);
  });

  it('refuses hostile and mistaken input with one line naming the problem', async () => {
    const cases: [string[], RegExp][] = [
      [s('entry', 'create', '-spiffeID', `spiffe://${TD}/a/../b`, '-parentID', `spiffe://${TD}/h`, '-selector', 'unix:uid:1'), /-spiffeID: .*'\.' or '\.\.' segments/],
      [s('entry', 'create', '-spiffeID', `spiffe://${TD}/a`, '-parentID', 'http://x/y', '-selector', 'unix:uid:1'), /-parentID: .*scheme/],
      [s('entry', 'create', '-spiffeID', `spiffe://${TD}/a`, '-parentID', `spiffe://${TD}/h`, '-selector', 'nocolon'), /-selector: .*"type:value"/],
      [s('entry', 'create', '-spiffeID', `spiffe://${TD}/a`, '-parentID', `spiffe://${TD}/h`, '-selector', ':x'), /-selector: invalid selector/],
      [s('entry', 'create', '-spiffeID', 'spiffe://other.test/a', '-parentID', `spiffe://${TD}/h`, '-selector', 'unix:uid:1'), /not in the server's trust domain.*INVALID_ARGUMENT/],
      [s('entry', 'create', '-spiffeID', `spiffe://${TD}/a`, '-selector', 'unix:uid:1'), /-parentID or -node is required/],
      [s('entry', 'create', '-parentID', `spiffe://${TD}/h`, '-selector', 'unix:uid:1'), /-spiffeID is required/],
      [s('entry', 'show', '-spiffeID', 'spiffe://EX.test/a'), /-spiffeID: .*lowercase/],
      [s('entry', 'show', '-selector', 'unix'), /-selector/],
      [s('entry', 'show', '-matchSelectorsOn', 'most'), /-matchSelectorsOn must be one of exact, subset, superset, any/],
      [s('entry', 'show', '-spiffeId', 'x'), /flag provided but not defined: -spiffeId \(did you mean -spiffeID/],
      [s('entry', 'show', '-output', 'yaml'), /invalid -output value "yaml"/],
      [s('entry', 'create', '-spiffeID', `spiffe://${TD}/a`, '-parentID', `spiffe://${TD}/h`, '-selector', 'unix:uid:1', '-x509SVIDTTL', '-5'), /-x509SVIDTTL must be positive/],
      [s('token', 'generate', '-ttl', '-5'), /-ttl must be positive/],
      [s('x509', 'mint', '-spiffeID', `spiffe://${TD}/a`, '-ttl', 'soon'), /-ttl must be/],
      [s('x509', 'mint', '-spiffeID', `spiffe://${TD}`), /trust domain|path/],
      [s('jwt', 'mint', '-spiffeID', `spiffe://${TD}/a`), /at least one -audience/],
      [s('agent', 'show', '-spiffeID', `spiffe://${TD}/spire/agent/none`), /NOT_FOUND/],
      [s('agent', 'ban'), /-spiffeID is required/],
      [s('bundle', 'set', '-id', 'spiffe://x.test', '-path', '/nonexistent.pem'), /cannot read -path/],
      [s('bundle', 'set', '-id', `spiffe://${TD}`), /bundle for example\.test is invalid|own trust domain/],
      [s('bundle', 'show', '-format', 'der'), /-format must be one of pem, spiffe/],
      [s('bundle', 'delete', '-id', 'spiffe://fed.test', '-mode', 'nuke'), /-mode must be one of restrict, dissociate, delete/],
      [['entry', 'show', '-socketPath', join(dir, 'nope.sock')], /cannot reach the server's admin socket at .*nope\.sock: is `mayfly-server run` running\?/],
      [['entry', 'count', '-socketPath', join(dir, 'server.conf')], /is not a socket/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args, { input: '' })));
    results.forEach((r, i) => {
      const [args, re] = cases[i] as [string[], RegExp];
      expect(oneErrorLine(r), args.join(' ')).toMatch(re);
    });
  });

  it('validates config files', async () => {
    const good = await cli(['validate', '-config', join(dir, 'server.conf')]);
    expect(good).toMatchObject({ code: 0, stdout: 'Configuration is valid.\n' });
    // Valid, but not what a SPIRE operator may think: each said on stderr, naming the HCL key.
    const warnings = good.stderr.split('\n').filter((l) => l !== '');
    expect(warnings.every((l) => l.startsWith('Warning: '))).toBe(true);
    expect(warnings.some((l) => /plugins\.DataStore\.sql\.plugin_data\.database_type "sqlite3" means Mayfly's LevelDB datastore/.test(l))).toBe(true);
    expect(warnings.some((l) => /plugins\.DataStore\.sql\.plugin_data\.connection_string is not used/.test(l))).toBe(true);
    writeFileSync(join(dir, 'bad.conf'), 'server {\n  trust_domain = "x.test"\n  bind_prot = 1\n}\n');
    expect(oneErrorLine(await cli(['validate', '-config', join(dir, 'bad.conf')]))).toMatch(/unknown key server\.bind_prot/);
    writeFileSync(join(dir, 'broken.conf'), 'server {\n  trust_domain = \n');
    expect(oneErrorLine(await cli(['validate', '-config', join(dir, 'broken.conf')]))).toMatch(/broken\.conf: config line 3/);
    expect(oneErrorLine(await cli(['run', '-config', join(dir, 'bad.conf')]))).toMatch(/bind_prot/);
  });

  it('exports Prometheus metrics for SVIDs, RPCs and datastore counts', async () => {
    const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
    expect(text).toMatch(/^mayfly_rpc_total\{method="Entry\/BatchCreateEntry",code="OK"\} [1-9]/m);
    expect(text).toMatch(/^mayfly_rpc_total\{method="Entry\/BatchUpdateEntry",code="OK"\} [1-9]/m);
    expect(text).toMatch(/^mayfly_rpc_duration_seconds_count\{method="Entry\/ListEntries"\} [1-9]/m);
    expect(text).toMatch(/^mayfly_svids_signed_total\{type="x509"\} [1-9]/m);
    expect(text).toMatch(/^mayfly_svids_signed_total\{type="jwt"\} [1-9]/m);
    expect(text).toMatch(/^mayfly_rpc_total\{method="Agent\/GetAgent",code="NOT_FOUND"\} [1-9]/m);
    expect(text).toMatch(/^mayfly_entries 5$/m);
    expect(text).toMatch(/^mayfly_agents 0$/m);
  });

  it('drains on SIGTERM, exits 0, and the data directory reopens with its entries (flags, no config)', async () => {
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.logs.some((l) => l.includes('server stopped'))).toBe(true);

    const again = await startServer(['-trustDomain', TD, '-dataDir', join(dir, 'data'), '-socketPath', sock, '-serverPort', '0', '-metricsPort', '0'], dir);
    try {
      expect((await cli(s('entry', 'count'))).stdout).toBe('5 registration entries\n');
    } finally {
      again.child.kill('SIGINT');
      expect(await again.exited).toBe(0);
    }
  });
});
