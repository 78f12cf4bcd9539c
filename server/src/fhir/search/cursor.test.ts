import { describe, expect, it } from 'vitest';
import type { PageCursor } from '../../storage/FhirStore.js';
import { pageOrFirst } from './cursor.js';

type Paging = { cursor?: PageCursor; count: number; offset: number };

/** A store of ids 1..5 in order; a cursor reads after or before an id, as the store's page query does. */
const ids = [1, 2, 3, 4, 5];
const read = async (paging: Paging): Promise<number[]> => {
  const at = Number(paging.cursor?.at?.id);
  if (paging.cursor?.direction === 'before') return ids.filter((id) => id < at).slice(-paging.count);
  if (paging.cursor?.direction === 'after') return ids.filter((id) => id > at).slice(0, paging.count);
  return ids.slice(paging.offset, paging.offset + paging.count);
};
const position = (id: number) => ({ keys: [], id: String(id) });

describe('pageOrFirst: the page a search or history link asks for', () => {
  it('a previous page that finds nothing is the first page, and says so by its paging', async () => {
    const { paging, page } = await pageOrFirst({ cursor: { direction: 'before', at: position(1) }, count: 2, offset: 0 }, read, (p) => p.length === 0);
    expect(page).toEqual([1, 2]);
    expect(paging.cursor).toBeUndefined();
  });

  it('a previous page that finds some, a next page that finds none, a last page and _count=0 stay as read', async () => {
    const empty = (p: number[]) => p.length === 0;
    expect((await pageOrFirst({ cursor: { direction: 'before', at: position(2) }, count: 2, offset: 0 }, read, empty)).page).toEqual([1]);
    expect((await pageOrFirst({ cursor: { direction: 'after', at: position(5) }, count: 2, offset: 0 }, read, empty)).page).toEqual([]);
    const last = await pageOrFirst({ cursor: { direction: 'before' }, count: 2, offset: 0 }, read, empty);
    expect(last.paging.cursor).toEqual({ direction: 'before' });
    expect((await pageOrFirst({ cursor: { direction: 'before', at: position(1) }, count: 0, offset: 0 }, read, empty)).paging.cursor).toBeDefined();
  });
});
