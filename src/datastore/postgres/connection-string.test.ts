import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { toPostgresUrl } from './connection-string.js';

/** What the pg driver itself makes of a connection string. */
function parse(connectionString: string): Record<string, unknown> {
  const c = new pg.Client({ connectionString });
  return { database: c.database, user: c.user, password: c.password, host: c.host, port: c.port, ssl: c.ssl };
}

describe('toPostgresUrl', () => {
  it('passes URLs through', () => {
    expect(toPostgresUrl('postgresql://u:p@db:5433/spire?sslmode=verify-full')).toBe('postgresql://u:p@db:5433/spire?sslmode=verify-full');
    expect(toPostgresUrl(' postgres://db/x ')).toBe('postgres://db/x');
  });

  it("turns SPIRE's keyword/value strings into URLs the driver reads the same way", () => {
    const url = toPostgresUrl('dbname=spire user=spire password=s3cr#t host=db.internal port=5433 sslmode=disable');
    expect(parse(url)).toMatchObject({ database: 'spire', user: 'spire', password: 's3cr#t', host: 'db.internal', port: 5433, ssl: false });
  });

  it('reads quoted values with escapes, spaces around =, and socket directories', () => {
    const url = toPostgresUrl("host = '/run/my pg' dbname='my db' password='it\\'s' application_name=mayfly");
    expect(parse(url)).toMatchObject({ host: '/run/my pg', database: 'my db', password: "it's" });
    expect(new URL(url).searchParams.get('application_name')).toBe('mayfly');
  });

  it('rejects text that is neither form, without echoing it', () => {
    for (const bad of ['', '   ', 'just words', 'host=db password=\'unterminated', '=x']) {
      expect(() => toPostgresUrl(bad), bad).toThrow(TypeError);
    }
    try {
      toPostgresUrl("password='hunter2");
    } catch (err) {
      expect((err as Error).message).not.toContain('hunter2');
    }
  });
});
