/**
 * @module server/testing
 *
 * A real server for tests, assembled as `mayfly-server run` would with default settings:
 * a LevelDB datastore in `<dataDir>/datastore`, CA keys on disk in `<dataDir>/keys` (or in
 * memory), the CA journal in `<dataDir>/ca-journal.json`, and the join_token node
 * attestor, all handed to `MayflyServer` (which builds none of its parts). State on disk
 * survives a `stop()`, so a test can restart a server on the same data directory.
 *
 * In the order the runner keeps: the admin socket's directory is checked, then the data
 * directory made 0700, before anything is opened. Not for production use.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeAttestor } from '../attestors/node/attestor.js';
import { JoinTokenAttestor } from '../attestors/node/join_token/join_token.js';
import { DiskKeyManager } from '../ca/disk-key-manager.js';
import { FileJournalStore } from '../ca/journal-store.js';
import { MemoryKeyManager } from '../ca/key-manager.js';
import { ServerCa } from '../ca/server-ca.js';
import type { Datastore } from '../datastore/datastore.js';
import { openLevelDatastore } from '../datastore/level/level.js';
import { ensurePrivateDir } from '../securefs/index.js';
import { generateKeyPair } from '../spiffe/keys.js';
import { createCsr } from '../spiffe/x509/csr.js';
import { ensureAdminSocketDir } from './admin-socket-dir.js';
import { tcpClients, unaryCall, type ServerApiClients } from './client.js';
import type { ChangeHub } from './hub.js';
import type { WireBundle, WireX509Svid } from './messages.js';
import { SILENT_LOGGER } from './ports.js';
import { startServerAudit, type ServerAudit } from './audit-ledger.js';
import { DEFAULT_AUDIT } from './config-audit.js';
import { SpiffeId } from '../spiffe/id.js';
import { MayflyServer, type MayflyServerConfig } from './server.js';

export interface TestServerConfig extends Partial<Omit<MayflyServerConfig, 'datastore' | 'ca' | 'attestors' | 'trustDomain'>> {
  /** Default `example.org`. */
  trustDomain?: string;
  /** Default: a fresh temporary directory, removed by `stop()`. */
  dataDir?: string;
  /** Default `<dataDir>/admin.sock`. */
  adminSocketPath?: string;
  /** Where the CA keys live: `disk` (default, `<dataDir>/keys`, kept across restarts) or `memory`. */
  keyManager?: 'disk' | 'memory';
  /** Node attestors over the datastore (default: join_token). */
  attestors?: (datastore: Datastore) => NodeAttestor[];
  /** Runs the audit ledger over the datastore (server/audit-ledger, default settings), as `mayfly-server run` does. */
  auditLedger?: boolean;
}

/** A started `MayflyServer` with the parts it was given, which `stop()` closes too. */
export class TestServer {
  readonly server: MayflyServer;
  readonly datastore: Datastore;
  readonly ca: ServerCa;
  readonly dataDir: string;
  /** The audit ledger, with `auditLedger: true`. */
  readonly audit: ServerAudit | undefined;
  readonly #removeDataDir: boolean;

  constructor(parts: { server: MayflyServer; datastore: Datastore; ca: ServerCa; dataDir: string; removeDataDir: boolean; audit?: ServerAudit }) {
    this.audit = parts.audit;
    this.server = parts.server;
    this.datastore = parts.datastore;
    this.ca = parts.ca;
    this.dataDir = parts.dataDir;
    this.#removeDataDir = parts.removeDataDir;
  }

  get port(): number {
    return this.server.port;
  }

  get adminSocketPath(): string {
    return this.server.adminSocketPath;
  }

  get hub(): ChangeHub {
    return this.server.hub;
  }

  /** Stops the server, then the CA, then closes the datastore (releasing its lock). */
  async stop(): Promise<void> {
    await this.server.stop();
    await this.audit?.stop();
    this.ca.stop();
    await this.datastore.close();
    if (this.#removeDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Opens the parts, starts a server on them; on failure closes whatever it opened and throws. */
export async function startTestServer(cfg: TestServerConfig = {}): Promise<TestServer> {
  const { keyManager = 'disk', attestors, auditLedger, ...rest } = cfg;
  const dataDir = cfg.dataDir ?? mkdtempSync(join(tmpdir(), 'mayfly-test-server-'));
  const adminSocketPath = cfg.adminSocketPath ?? join(dataDir, 'admin.sock');
  const logger = cfg.logger ?? SILENT_LOGGER;
  const now = cfg.now ?? ((): Date => new Date());
  const closers: (() => Promise<void> | void)[] = [];
  try {
    ensureAdminSocketDir(adminSocketPath);
    ensurePrivateDir(dataDir, { onTightened: (msg) => logger.warn({ dataDir }, msg) });
    const path = join(dataDir, 'datastore');
    const datastore = await openLevelDatastore({ path, now, warn: (msg) => logger.warn({ dataDir: path }, msg) });
    closers.push(() => datastore.close());
    const ca = new ServerCa({
      trustDomain: cfg.trustDomain ?? 'example.org',
      keyManager: keyManager === 'memory' ? new MemoryKeyManager() : new DiskKeyManager({ dataDir }),
      journal: new FileJournalStore({ path: join(dataDir, 'ca-journal.json') }),
      now,
      logger,
    });
    await ca.init();
    ca.start();
    closers.push(() => ca.stop());
    let audit: ServerAudit | undefined;
    if (auditLedger === true) {
      audit = await startServerAudit({
        datastore,
        ca,
        serverId: SpiffeId.parse(`spiffe://${cfg.trustDomain ?? 'example.org'}/spire/server`),
        instanceId: 'test-server',
        settings: DEFAULT_AUDIT,
        logger,
        now,
      });
      const started = audit;
      closers.push(() => started.stop());
    }
    const server = new MayflyServer({
      bindAddress: '127.0.0.1',
      port: 0,
      ...rest,
      trustDomain: cfg.trustDomain ?? 'example.org',
      dataDir,
      adminSocketPath,
      datastore,
      ca,
      attestors: attestors?.(datastore) ?? [new JoinTokenAttestor({ datastore })],
      ...(audit !== undefined ? { audit: audit.ledger } : {}),
    });
    closers.push(() => server.stop());
    await server.start();
    return new TestServer({ server, datastore, ca, dataDir, removeDataDir: cfg.dataDir === undefined, ...(audit !== undefined ? { audit } : {}) });
  } catch (err) {
    for (const close of closers.reverse()) await Promise.resolve(close()).catch(() => undefined);
    if (cfg.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Attests a new agent by join token over TCP, as `mayfly-agent` does: a token from the admin
 * API, AttestAgent with a fresh key, then server API clients authenticated by the agent SVID.
 */
export async function attestJoinTokenAgent(opts: { port: number; admin: ServerApiClients; trustDomain: string; bundleRoots: readonly Uint8Array[] }): Promise<{ agentId: string; clients: ServerApiClients }> {
  const address = `127.0.0.1:${opts.port}`;
  const token = await unaryCall<{ value: string }>(opts.admin.Agent, 'CreateJoinToken', { ttl: 600 });
  const anon = tcpClients({ address, trustDomain: opts.trustDomain, bundleRoots: opts.bundleRoots });
  const key = generateKeyPair();
  try {
    const res = await unaryCall<{ svid: WireX509Svid; bundle: WireBundle }>(anon.Agent, 'AttestAgent', {
      attestation_data: { type: 'join_token', payload: Buffer.from(token.value) },
      csr: createCsr({ privateKey: key.privateKey }),
    });
    const clients = tcpClients({ address, trustDomain: opts.trustDomain, bundleRoots: opts.bundleRoots, svid: { certChain: res.svid.cert_chain, privateKey: key.privateKey } });
    return { agentId: res.svid.spiffe_id, clients };
  } finally {
    anon.close();
  }
}
