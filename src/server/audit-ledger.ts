/**
 * @module server/audit-ledger
 *
 * The server's audit ledger, assembled (ServerRunner calls `startServerAudit`): an
 * `AuditLedger` over the datastore whose checkpoints are JWT-SVIDs minted by the CA for
 * `spiffe://<td>/spire/server`; a `server.started` record carrying the JWT keys this server
 * may sign with; a record of every CA authority step, operator-driven or automatic (the
 * ledger must hold every JWT key a checkpoint was signed with, or old checkpoints could not
 * be checked once that key left the bundle); and pruning past the retention, always back to
 * a checkpoint so the rest stays verifiable.
 */
import type { JsonWebKey } from 'node:crypto';
import { AuditLedger, type AuditStore } from '../audit/ledger.js';
import { decodeRecordBody } from '../audit/record.js';
import type { X509SvidIssuance } from '../datastore/datastore.js';
import type { AuditSettings } from './config-audit.js';
import type { ServerApiCa, ServerLogger } from './ports.js';
import type { SpiffeId } from '../spiffe/id.js';

/** The datastore calls the ledger and its pruning make. */
export interface AuditDatastore extends AuditStore<X509SvidIssuance> {
  listAuditRecords(q: { afterSeq?: number; limit?: number }): Promise<{ seq: number; body: string }[]>;
  pruneAuditRecords(beforeSeq: number): Promise<number>;
}

export interface ServerAuditConfig {
  datastore: AuditDatastore;
  ca: Pick<ServerApiCa, 'signJwtSvid' | 'getBundle' | 'onEvent'>;
  serverId: SpiffeId;
  /** This server's stable instance ID (its bundle owner ID). */
  instanceId: string;
  settings: AuditSettings;
  logger: ServerLogger;
  now?: () => Date;
}

export interface ServerAudit {
  readonly ledger: AuditLedger<X509SvidIssuance>;
  /** Prunes records older than the retention back to a checkpoint; returns how many went. */
  prune(): Promise<number>;
  stop(): Promise<void>;
}

const PRUNE_EVERY_MS = 3600_000;

function jwtKeysOf(ca: ServerAuditConfig['ca']): Record<string, JsonWebKey> {
  const out: Record<string, JsonWebKey> = {};
  for (const [kid, key] of ca.getBundle().jwtAuthorities) out[kid] = key.export({ format: 'jwk' });
  return out;
}

export async function startServerAudit(cfg: ServerAuditConfig): Promise<ServerAudit> {
  const now = cfg.now ?? (() => new Date());
  const ledger = new AuditLedger<X509SvidIssuance>({
    store: cfg.datastore,
    signer: {
      signCheckpoint: (audience) => {
        const signed = cfg.ca.signJwtSvid({ spiffeId: cfg.serverId, audience: [audience], ttlSeconds: 300 });
        const key = cfg.ca.getBundle().jwtAuthorities.get(signed.authorityId);
        return { token: signed.token, ...(key !== undefined ? { publicJwk: key.export({ format: 'jwk' }) as Record<string, unknown> } : {}) };
      },
    },
    serverInstance: cfg.instanceId,
    now,
    checkpointEvery: cfg.settings.checkpointEvery,
    checkpointIntervalMs: cfg.settings.checkpointIntervalSeconds * 1000,
    logger: cfg.logger,
  });
  ledger.start();
  const self = { kind: 'server', id: cfg.serverId.toString() } as const;
  await ledger.record(self, { kind: 'server.started', jwtKeys: jwtKeysOf(cfg.ca) as Record<string, Record<string, unknown>> });
  // Signed at once with this server's current key, so the history before it is vouched for by
  // a key of today's bundle even when the key that signed the last checkpoint is gone.
  await ledger.checkpoint();

  const unsubscribe = cfg.ca.onEvent((e) => {
    if (e.type === 'bundle-updated') return;
    const step = e.type.slice('authority-'.length);
    // The CA publishes a prepared key in its bundle right after this event: read it a turn later.
    setImmediate(() => {
      const jwk = e.kind === 'jwt' && e.type === 'authority-prepared' ? cfg.ca.getBundle().jwtAuthorities.get(e.authorityId)?.export({ format: 'jwk' }) : undefined;
      ledger
        .record(self, { kind: 'authority', authority: e.kind, step, authorityId: e.authorityId, ...(jwk !== undefined ? { publicJwk: jwk as Record<string, unknown> } : {}) })
        .catch((err: unknown) => cfg.logger.error({ err, authorityId: e.authorityId, step }, 'audit record of a CA authority step failed'));
    });
  });

  const prune = async (): Promise<number> => {
    if (cfg.settings.retentionSeconds <= 0) return 0;
    const cutoff = now().getTime() - cfg.settings.retentionSeconds * 1000;
    // The newest checkpoint written before the cutoff becomes the ledger's first record.
    let anchor: number | undefined;
    let after = 0;
    for (;;) {
      const page = await cfg.datastore.listAuditRecords({ afterSeq: after, limit: 1000 });
      if (page.length === 0) break;
      let past = false;
      for (const r of page) {
        const b = decodeRecordBody(r.body);
        if (b !== undefined && b.time >= cutoff) {
          past = true;
          break;
        }
        if (b?.kind === 'checkpoint') anchor = r.seq;
      }
      if (past) break;
      after = page.at(-1)!.seq;
    }
    return anchor === undefined ? 0 : cfg.datastore.pruneAuditRecords(anchor);
  };
  const timer = setInterval(() => {
    prune().catch((err: unknown) => cfg.logger.warn({ err }, 'audit ledger pruning failed; it is retried within the hour'));
  }, PRUNE_EVERY_MS);
  timer.unref();

  return {
    ledger,
    prune,
    async stop() {
      clearInterval(timer);
      unsubscribe();
      await ledger.stop();
    },
  };
}
