import { z } from 'zod';
import { type PageCursor, SORT_KEY_KINDS, type SortPosition, type SortRule } from '../../storage/FhirStore.js';
import { badRequest, type FhirError } from '../outcomes.js';
import { isInstant } from './dates.js';
import { ID_RE } from '../responses.js';

/**
 * `_cursor`: where a page link's page starts, as the position of a row in the search's sort order
 * (PageCursor), not as an offset. Opaque to clients (base64url of JSON); it carries nothing but sort
 * keys and an id, so a changed one can only move where the caller's own search starts: each page is
 * still matched and restricted to the caller's access as any search is. What cannot be one the server
 * wrote is refused (400), never sent to the database.
 */
export const CURSOR_PARAM = '_cursor';

const MAX_CURSOR_CHARS = 8192;
const DECIMAL = /^-?\d{1,200}(\.\d{1,200})?$/;

const CursorJson = z
  .object({
    /** after or before the position */
    d: z.enum(['a', 'b']),
    /** the sort it was made for (sortSignature) */
    s: z.string().max(2000),
    /** the position's keys, one per sort rule, then its id; absent: from the end */
    p: z.array(z.string().max(2000).nullable()).max(64).optional(),
  })
  .strict();

export function encodeCursor(sort: readonly SortRule[], cursor: PageCursor): string {
  const json: z.infer<typeof CursorJson> = { d: cursor.direction === 'after' ? 'a' : 'b', s: sortSignature(sort), p: cursor.at ? [...cursor.at.keys, cursor.at.id] : undefined };
  return Buffer.from(JSON.stringify(json)).toString('base64url');
}

/** The cursor `raw` names, for a search sorted by `sort`; 400 when it is not one the server could have written for it. */
export function decodeCursor(raw: string, sort: readonly SortRule[]): PageCursor {
  if (raw.length > MAX_CURSOR_CHARS || !/^[A-Za-z0-9_-]+$/.test(raw)) throw invalid('it is not a cursor this server wrote');
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw invalid('it is not a cursor this server wrote');
  }
  const parsed = CursorJson.safeParse(json);
  if (!parsed.success) throw invalid('it is not a cursor this server wrote');
  const { d, s, p } = parsed.data;
  if (s !== sortSignature(sort)) throw invalid('it was made for another _sort; start again from the first page');
  const direction = d === 'a' ? 'after' : 'before';
  if (!p) return { direction };
  return { direction, at: position(p, sort) };
}

function position(values: (string | null)[], sort: readonly SortRule[]): SortPosition {
  const keys = values.slice(0, -1);
  const id = values[values.length - 1];
  if (keys.length !== sort.length || typeof id !== 'string' || !ID_RE.test(id)) throw invalid('its position does not fit the search');
  keys.forEach((key, i) => {
    if (key !== null && !isKey(key, SORT_KEY_KINDS[sort[i].kind])) throw invalid(`its value for '${sort[i].param}' is not one`);
  });
  return { keys, id };
}

function isKey(value: string, kind: (typeof SORT_KEY_KINDS)[SortRule['kind']]): boolean {
  switch (kind) {
    case 'instant':
      // A real calendar instant: the database would refuse 2026-02-30 with an error, not a 400.
      return isInstant(value);
    case 'decimal':
      return DECIMAL.test(value);
    case 'text':
      return !value.includes('\u0000');
  }
}

/** The sort a cursor belongs to, as `_sort` writes it. */
const sortSignature = (sort: readonly SortRule[]) => sort.map((rule) => `${rule.descending ? '-' : ''}${rule.param}`).join(',');

const invalid = (why: string): FhirError => badRequest(`Invalid ${CURSOR_PARAM}: ${why}`, CURSOR_PARAM);

/**
 * A page read backwards from a cursor (`previous`) that finds nothing is the first page instead: everything before the
 * position stopped matching since its link was made, and an empty page would have no links to go on from. (A short
 * page, where fewer remain, stays as read: it is where a walk back from `last` ends too; so does `last` itself.) Searches and history both.
 */
export async function pageOrFirst<P extends { cursor?: PageCursor; count: number; offset: number }, R>(
  paging: P,
  read: (paging: P) => Promise<R>,
  isEmpty: (page: R) => boolean,
): Promise<{ paging: P; page: R }> {
  const page = await read(paging);
  if (paging.cursor?.direction !== 'before' || !paging.cursor.at || paging.count === 0 || !isEmpty(page)) return { paging, page };
  const first = { ...paging, cursor: undefined, offset: 0 };
  return { paging: first, page: await read(first) };
}
