/**
 * @module server/spire-api/paging
 *
 * SPIRE's paging over Mayfly's. SPIRE's list handlers (entry/v1 and agent/v1 `service.go`)
 * paginate only when `page_size > 0`: then `page_token` continues a listing; with 0 or a
 * negative size the token is ignored and everything is answered at once, however many. A
 * huge size is not refused either. Mayfly's listings always page, at most
 * `limits.maxPageSize` at a time, so a SPIRE page is gathered from as many Mayfly pages as
 * it takes, each asking for no more than is still wanted so that the Mayfly token after
 * the last one is exactly where the SPIRE page ends (it becomes SPIRE's next_page_token).
 *
 * Filters SPIRE has and Mayfly's datastore does not (entry hint and downstream; agent
 * attestation type, re-attestability and selectors) are applied here to each Mayfly page
 * (`keep`). Such a page can come back short; as SPIRE's own datastore does when its
 * selector matching drops rows, Mayfly pages are read until at least one item is kept or
 * the listing ends, so a page is empty only when it is the last.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { spireError, SpireStatus } from './spire-call.js';

/** One page of a Mayfly listing. */
export interface SourcePage<T> {
  items: readonly T[];
  /** '' when the listing is over. */
  next: string;
}

export interface SpirePageRequest<T> {
  /** SPIRE's page_size as sent (0 or negative: everything). */
  pageSize: number;
  /** SPIRE's page_token as sent (ignored unless pageSize > 0). */
  pageToken: string;
  /** Largest page Mayfly answers. */
  maxPage: number;
  /** Reads one Mayfly page of at most `size` items after `token`. */
  fetch(size: number, token: string): Promise<SourcePage<T>>;
  /** The filters Mayfly could not apply; absent: every item is kept. */
  keep?: (item: T) => boolean;
}

/** A SPIRE page: the items and SPIRE's next_page_token ('' when there is no more). */
export async function spirePage<T>(r: SpirePageRequest<T>): Promise<SourcePage<T>> {
  if (!Number.isInteger(r.maxPage) || r.maxPage < 1) throw new TypeError('maxPage must be a positive integer');
  const keep = r.keep ?? (() => true);
  const out: T[] = [];
  if (r.pageSize <= 0) {
    let token = '';
    do {
      const page = await r.fetch(r.maxPage, token);
      for (const item of page.items) if (keep(item)) out.push(item);
      token = page.next;
    } while (token !== '');
    return { items: out, next: '' };
  }
  let token = r.pageToken;
  for (;;) {
    const page = await r.fetch(Math.min(r.maxPage, r.pageSize - out.length), token);
    for (const item of page.items) if (keep(item)) out.push(item);
    token = page.next;
    if (token === '' || out.length >= r.pageSize) break;
    if (r.keep !== undefined && out.length > 0) break;
  }
  return { items: out, next: token };
}

/** How many items of a whole Mayfly listing `keep` keeps (SPIRE's filtered counts), without holding them. */
export async function countAll<T>(maxPage: number, fetch: SpirePageRequest<T>['fetch'], keep: (item: T) => boolean): Promise<number> {
  let n = 0;
  let token = '';
  do {
    const page = await fetch(maxPage, token);
    for (const item of page.items) if (keep(item)) n++;
    token = page.next;
  } while (token !== '');
  return n;
}

/**
 * `spirePage` for a List handler, answering a page token the listing cannot parse as SPIRE
 * does: INTERNAL "failed to list <what>: could not parse token ...", as every datastore
 * failure (the filters were checked before, so a refusal now is the token's).
 */
export async function spireListPage<T>(what: 'entries' | 'agents', r: SpirePageRequest<T>): Promise<SourcePage<T>> {
  try {
    return await spirePage(r);
  } catch (err) {
    if (err instanceof SpireStatus && err.code === GrpcStatus.INVALID_ARGUMENT && r.pageSize > 0 && r.pageToken !== '') {
      throw spireError(GrpcStatus.INTERNAL, `failed to list ${what}: could not parse token '${r.pageToken.slice(0, 64)}'`);
    }
    throw err;
  }
}
