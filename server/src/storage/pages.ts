import type { Resource } from 'fhir/r4.js';
import type { FhirStore, PageCursor, SearchQuery } from './FhirStore.js';

/** Every match of a query, a page at a time in id order, each page after the last one's id: none skipped when some are deleted meanwhile. */
export async function* pagesInIdOrder(store: FhirStore, query: SearchQuery, pageSize = 500): AsyncGenerator<Resource[]> {
  let cursor: PageCursor | undefined;
  for (;;) {
    const page = await store.search({ ...query, sort: [{ param: '_id', kind: 'id', descending: false }], count: pageSize, offset: 0, total: false, cursor });
    yield page.resources;
    if (!page.hasMore || !page.edges) return;
    cursor = { direction: 'after', at: page.edges.last };
  }
}

/** Every match of a query, read a page at a time (pagesInIdOrder), in id order. */
export async function everyMatch(store: FhirStore, query: SearchQuery, pageSize = 500): Promise<Resource[]> {
  const found: Resource[] = [];
  for await (const page of pagesInIdOrder(store, query, pageSize)) found.push(...page);
  return found;
}
