/**
 * @module datastore/postgres/connection-string
 *
 * SPIRE's `DataStore "sql"` takes a libpq connection string, most often in keyword/value
 * form (`dbname=spire user=spire host=db sslmode=verify-full`); the `pg` driver reads only
 * the URL form. `toPostgresUrl` turns the first into the second (URLs pass through), so
 * a SPIRE `server.conf` works unchanged.
 */

/**
 * A `postgresql://` URL equivalent to `conn`. Keyword/value strings follow libpq: pairs
 * `key = value` separated by whitespace, values optionally single-quoted with `\'` and
 * `\\` escapes. `dbname` becomes the URL's path; every other keyword a query parameter
 * (the driver reads host, port, user, password, sslmode, sslrootcert, ... from there).
 * Throws TypeError naming the problem (never echoing a password).
 */
export function toPostgresUrl(conn: string): string {
  if (typeof conn !== 'string' || conn.trim() === '') throw new TypeError('the PostgreSQL connection string is empty');
  const trimmed = conn.trim();
  if (/^postgres(ql)?:\/\//i.test(trimmed) || trimmed.startsWith('socket:')) return trimmed;
  const pairs = parseKeywordValue(trimmed);
  let dbname = '';
  const query = new URLSearchParams();
  for (const [k, v] of pairs) {
    if (k === 'dbname') dbname = v;
    else query.append(k, v);
  }
  const q = query.toString();
  return `postgresql:///${encodeURIComponent(dbname)}${q === '' ? '' : `?${q}`}`;
}

function parseKeywordValue(s: string): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  const skipSpace = (): void => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  while (true) {
    skipSpace();
    if (i >= s.length) return out;
    const keyStart = i;
    while (i < s.length && /[A-Za-z0-9_]/.test(s[i]!)) i++;
    const key = s.slice(keyStart, i);
    skipSpace();
    if (key === '' || s[i] !== '=') {
      throw new TypeError(`the PostgreSQL connection string is neither a postgresql:// URL nor "key=value" pairs (bad text at position ${keyStart})`);
    }
    i++;
    skipSpace();
    let value = '';
    if (s[i] === "'") {
      i++;
      let closed = false;
      while (i < s.length) {
        const c = s[i]!;
        if (c === '\\' && i + 1 < s.length) {
          value += s[i + 1]!;
          i += 2;
        } else if (c === "'") {
          i++;
          closed = true;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) throw new TypeError(`the PostgreSQL connection string has an unterminated quoted value for "${key}"`);
    } else {
      while (i < s.length && !/\s/.test(s[i]!)) {
        if (s[i] === '\\' && i + 1 < s.length) {
          value += s[i + 1]!;
          i += 2;
        } else value += s[i++]!;
      }
    }
    out.push([key, value]);
  }
}
