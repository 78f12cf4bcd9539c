import { describe, expect, it } from 'vitest';
import type { SearchQuery } from '../FhirStore.js';
import { SearchCache } from './searchCache.js';

const query = (resourceType: string, clauses: SearchQuery['clauses'] = []): SearchQuery => ({ resourceType, clauses, sort: [], count: 10, offset: 0, total: false });
const page = (id: string) => ({ contents: [JSON.stringify({ resourceType: 'PractitionerRole', id })], hasMore: false });

describe('SearchCache', () => {
  const cache = () => new SearchCache(new Set(['PractitionerRole', 'Location']), 2);

  it('caches searches of directory types only, and never one that joins another type', () => {
    const c = cache();
    expect(c.keyOf(query('PractitionerRole'))).toBeDefined();
    expect(c.keyOf(query('Task'))).toBeUndefined();
    expect(c.keyOf(query('PractitionerRole', [{ kind: 'chain', param: 'practitioner', targetType: 'Practitioner', clause: { kind: 'string', param: 'name', mode: 'starts', values: ['a'] } }]))).toBeUndefined();
    expect(c.keyOf(query('PractitionerRole', [{ kind: 'reverseChain', sourceType: 'Task', refParam: 'owner', clause: { kind: 'id', ids: ['x'] } }]))).toBeUndefined();
  });

  it('a write of a type drops its pages and refuses a fill from a search that began before it', () => {
    const c = cache();
    const roles = c.keyOf(query('PractitionerRole'))!;
    const locations = c.keyOf(query('Location'))!;
    c.fill(roles, 'PractitionerRole', page('a'), c.begin('PractitionerRole'));
    c.fill(locations, 'Location', page('l'), c.begin('Location'));
    const started = c.begin('PractitionerRole');
    c.invalidate('PractitionerRole');
    expect(c.get(roles)).toBeUndefined();
    expect(c.get(locations)).toEqual(page('l'));
    c.fill(roles, 'PractitionerRole', page('stale'), started);
    expect(c.get(roles)).toBeUndefined();
    c.fill(roles, 'PractitionerRole', page('b'), c.begin('PractitionerRole'));
    expect(c.get(roles)).toEqual(page('b'));
  });

  it('keeps the most recently used pages up to its capacity', () => {
    const c = cache();
    const keys = ['a', 'b', 'c'].map((id) => c.keyOf(query('PractitionerRole', [{ kind: 'id', ids: [id] }]))!);
    c.fill(keys[0], 'PractitionerRole', page('a'), c.begin('PractitionerRole'));
    c.fill(keys[1], 'PractitionerRole', page('b'), c.begin('PractitionerRole'));
    c.get(keys[0]);
    c.fill(keys[2], 'PractitionerRole', page('c'), c.begin('PractitionerRole'));
    expect([c.get(keys[0]), c.get(keys[1]), c.get(keys[2])].map((p) => p && JSON.parse(p.contents[0]).id)).toEqual(['a', undefined, 'c']);
  });

  it('while suspended (changes of other processes may go unheard) it caches nothing; resuming starts empty', () => {
    const c = cache();
    const roles = c.keyOf(query('PractitionerRole'))!;
    c.fill(roles, 'PractitionerRole', page('a'), c.begin('PractitionerRole'));
    const started = c.begin('PractitionerRole');
    c.suspend();
    expect(c.get(roles)).toBeUndefined();
    expect(c.keyOf(query('PractitionerRole'))).toBeUndefined();
    c.resume();
    c.fill(roles, 'PractitionerRole', page('stale'), started);
    expect(c.get(roles)).toBeUndefined();
    c.fill(roles, 'PractitionerRole', page('b'), c.begin('PractitionerRole'));
    expect(c.get(roles)).toEqual(page('b'));
  });
});
