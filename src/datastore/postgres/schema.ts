/**
 * @module datastore/postgres/schema
 *
 * The tables, their migrations and the version check at open.
 *
 * Threats it stops:
 * - two servers starting together both creating the tables: the migration runs under a
 *   transaction-scoped advisory lock keyed by the schema name.
 * - a database written by a newer Mayfly: a newer schema version is refused rather than
 *   misread.
 */
import type { Pool as PgPool } from 'pg';
import { DatastoreError } from '../records.js';

/** The schema version this build writes and reads. */
export const POSTGRES_SCHEMA_VERSION = 7;
export const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** The migrations, in order: MIGRATIONS[i] takes the schema from version i to i + 1. `S` is the quoted schema name. */
const MIGRATIONS: readonly ((S: string) => string[])[] = [
  (S) => [
    `CREATE TABLE ${S}.entries (
       entry_id   text COLLATE "C" PRIMARY KEY,
       unique_key text COLLATE "C" NOT NULL UNIQUE,
       spiffe_id  text COLLATE "C" NOT NULL,
       parent_id  text COLLATE "C" NOT NULL,
       revision   bigint NOT NULL,
       created_at bigint NOT NULL,
       body       text NOT NULL)`,
    `CREATE INDEX entries_by_spiffe_id ON ${S}.entries (spiffe_id, entry_id)`,
    `CREATE INDEX entries_by_parent_id ON ${S}.entries (parent_id, entry_id)`,
    `CREATE TABLE ${S}.entry_selectors (
       selector text COLLATE "C" NOT NULL,
       entry_id text COLLATE "C" NOT NULL REFERENCES ${S}.entries (entry_id) ON DELETE CASCADE,
       PRIMARY KEY (selector, entry_id))`,
    `CREATE INDEX entry_selectors_by_entry ON ${S}.entry_selectors (entry_id)`,
    `CREATE TABLE ${S}.entry_federates_with (
       trust_domain text COLLATE "C" NOT NULL,
       entry_id     text COLLATE "C" NOT NULL REFERENCES ${S}.entries (entry_id) ON DELETE CASCADE,
       PRIMARY KEY (trust_domain, entry_id))`,
    `CREATE INDEX entry_federates_with_by_entry ON ${S}.entry_federates_with (entry_id)`,
    `CREATE TABLE ${S}.agents (
       spiffe_id        text COLLATE "C" PRIMARY KEY,
       attestation_type text NOT NULL,
       serial_number    text NOT NULL,
       cert_not_after   bigint NOT NULL,
       selectors        text NOT NULL,
       banned           boolean NOT NULL,
       can_reattest     boolean NOT NULL,
       created_at       bigint NOT NULL,
       updated_at       bigint NOT NULL)`,
    `CREATE TABLE ${S}.join_tokens (
       token_sha256 text COLLATE "C" PRIMARY KEY,
       expires_at   bigint NOT NULL,
       created_at   bigint NOT NULL)`,
    `CREATE TABLE ${S}.bundles (
       trust_domain text COLLATE "C" PRIMARY KEY,
       bundle       bytea NOT NULL,
       sequence     bigint NOT NULL,
       updated_at   bigint NOT NULL)`,
    `CREATE TABLE ${S}.ca_journal (
       id    smallint PRIMARY KEY CHECK (id = 1),
       bytes bytea NOT NULL)`,
    // Change notices for watch(): sent by PostgreSQL at COMMIT, whoever wrote.
    `CREATE FUNCTION ${S}.mayfly_notify() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF TG_LEVEL = 'ROW' THEN
         PERFORM pg_notify(TG_ARGV[0], json_build_object('kind', 'agent', 'agentId',
           CASE WHEN TG_OP = 'DELETE' THEN OLD.spiffe_id ELSE NEW.spiffe_id END)::text);
       ELSE
         PERFORM pg_notify(TG_ARGV[0], json_build_object('kind', TG_ARGV[1])::text);
       END IF;
       RETURN NULL;
     END $$`,
    // Selector and federation rows only change together with their entry's row.
    `CREATE TRIGGER entries_changed AFTER INSERT OR UPDATE OR DELETE ON ${S}.entries FOR EACH STATEMENT EXECUTE FUNCTION ${S}.mayfly_notify('${channel(S)}', 'entries')`,
    `CREATE TRIGGER bundles_changed AFTER INSERT OR UPDATE OR DELETE ON ${S}.bundles FOR EACH STATEMENT EXECUTE FUNCTION ${S}.mayfly_notify('${channel(S)}', 'bundles')`,
    `CREATE TRIGGER agents_changed AFTER INSERT OR UPDATE OR DELETE ON ${S}.agents FOR EACH ROW EXECUTE FUNCTION ${S}.mayfly_notify('${channel(S)}')`,
  ],
  // 1 -> 2: the audit ledger (datastore/postgres/audit).
  (S) => [
    `CREATE TABLE ${S}.audit_records (
       seq       bigint PRIMARY KEY,
       prev_hash text COLLATE "C" NOT NULL,
       hash      text COLLATE "C" NOT NULL,
       body      text NOT NULL)`,
  ],
  // 2 -> 3: federation relationships (issue 9).
  (S) => [
    `CREATE TABLE ${S}.federation_relationships (
       trust_domain        text COLLATE "C" PRIMARY KEY,
       bundle_endpoint_url text NOT NULL,
       profile             text NOT NULL CHECK (profile IN ('https_web', 'https_spiffe')),
       endpoint_spiffe_id  text NOT NULL,
       created_at          bigint NOT NULL,
       updated_at          bigint NOT NULL)`,
  ],
  // 3 -> 4 (issue 10): issued X509-SVIDs and their revocations, pruned once expired.
  (S) => [
    `CREATE TABLE ${S}.x509_svids (
       serial_hex   text COLLATE "C" PRIMARY KEY,
       spiffe_id    text COLLATE "C" NOT NULL,
       entry_id     text COLLATE "C" NOT NULL,
       authority_id text NOT NULL,
       not_after    bigint NOT NULL,
       revoked_at   bigint,
       reason       text)`,
    `CREATE INDEX x509_svids_by_spiffe_id ON ${S}.x509_svids (spiffe_id, serial_hex)`,
    `CREATE INDEX x509_svids_by_entry_id ON ${S}.x509_svids (entry_id, serial_hex) WHERE entry_id <> ''`,
    `CREATE INDEX x509_svids_by_not_after ON ${S}.x509_svids (not_after)`,
    `CREATE INDEX x509_svids_revoked ON ${S}.x509_svids (serial_hex) WHERE revoked_at IS NOT NULL`,
  ],
  // 4 -> 5 (issue 10): the agent an SVID was signed for, so banning it revokes what it was issued.
  (S) => [
    `ALTER TABLE ${S}.x509_svids ADD COLUMN agent_id text COLLATE "C" NOT NULL DEFAULT ''`,
    `CREATE INDEX x509_svids_by_agent_id ON ${S}.x509_svids (agent_id, serial_hex) WHERE agent_id <> ''`,
  ],
  // 5 -> 6 (issue 11): entry owners and labels as indexed columns (they are also in
  // `body`, with `purpose`). Entries written before have neither: '' and {}.
  (S) => [
    `ALTER TABLE ${S}.entries ADD COLUMN owner text COLLATE "C" NOT NULL DEFAULT ''`,
    `ALTER TABLE ${S}.entries ADD COLUMN labels jsonb NOT NULL DEFAULT '{}'::jsonb`,
    `CREATE INDEX entries_by_owner ON ${S}.entries (owner, entry_id) WHERE owner <> ''`,
    `CREATE INDEX entries_by_labels ON ${S}.entries USING gin (labels jsonb_path_ops)`,
  ],
  // 6 -> 7 (issue 11): per-entry usage records (datastore/postgres/usage), written in batches.
  (S) => [`CREATE TABLE ${S}.entry_usage (entry_id text COLLATE "C" PRIMARY KEY, body text NOT NULL)`],
];

/** The LISTEN/NOTIFY channel of a schema (`S` quoted, as in MIGRATIONS). */
export function channel(S: string): string {
  return `mayfly_${S.slice(1, -1)}`.slice(0, 63);
}

/** Creates or migrates the schema; returns the connection's synchronous_commit setting. */
export async function migrate(pool: PgPool, schema: string): Promise<string> {
  const S = `"${schema}"`;
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    // Servers starting together must not both create the tables.
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mayfly-schema:${schema}`]);
    const ns = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (ns.rowCount === 0) await client.query(`CREATE SCHEMA ${S}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${S}.mayfly_schema_version (
       id smallint PRIMARY KEY CHECK (id = 1),
       version integer NOT NULL)`);
    const row = await client.query<{ version: number }>(`SELECT version FROM ${S}.mayfly_schema_version WHERE id = 1`);
    const version = row.rows[0]?.version ?? 0;
    if (version > POSTGRES_SCHEMA_VERSION) {
      throw new DatastoreError(
        'ERR_DATASTORE_UNAVAILABLE',
        `the PostgreSQL datastore (schema ${schema}) has schema version ${version}, newer than this build's ${POSTGRES_SCHEMA_VERSION}: it was written by a newer Mayfly; run that version or a newer one`,
      );
    }
    for (let v = version; v < POSTGRES_SCHEMA_VERSION; v++) {
      for (const sql of MIGRATIONS[v]!(S)) await client.query(sql);
    }
    if (version !== POSTGRES_SCHEMA_VERSION) {
      await client.query(
        `INSERT INTO ${S}.mayfly_schema_version (id, version) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version`,
        [POSTGRES_SCHEMA_VERSION],
      );
    }
    const sync = await client.query<{ s: string }>("SELECT current_setting('synchronous_commit') AS s");
    await client.query('COMMIT');
    return sync.rows[0]!.s;
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => (broken = e));
    throw err;
  } finally {
    client.release(broken);
  }
}
