import { describe, expect, it } from 'vitest';
import { encodeCursor } from './cursor.js';
import { parseSearch } from './parse.js';
import { SearchParamRegistry } from './registry.js';

describe('date search values', () => {
  const registry = SearchParamRegistry.withStandard();
  const clause = (value: string) => parseSearch('Patient', [['_lastUpdated', value]], registry, { strict: true, baseUrl: 'http://x/fhir' }).query.clauses[0];

  it('an offset whose + arrived unescaped (a space in a query string) reads as the + it was', () => {
    expect(clause('ge2020-01-01T10:00:00 05:00')).toEqual(clause('ge2020-01-01T10:00:00+05:00'));
    expect(clause('2020-01-01T10:00 05:00')).toEqual(clause('2020-01-01T10:00+05:00'));
  });

  it('any other space is still an invalid date', () => {
    expect(() => clause('2020-01-01 10:00:00')).toThrow(/Invalid date/);
  });
});

describe('_cursor', () => {
  const registry = SearchParamRegistry.withStandard();
  const parse = (params: [string, string][]) => parseSearch('Patient', params, registry, { strict: true, baseUrl: 'http://x/fhir' }).query;
  const sort = parse([['_sort', '-birthdate,name']]).sort;

  it('reads back the position a page link was written with, whichever comes first of _cursor and _sort', () => {
    const at = { keys: ['1970-01-01T00:00:00.000000Z', null], id: 'p-1' };
    const cursor = encodeCursor(sort, { direction: 'after', at });
    expect(parse([['_cursor', cursor], ['_sort', '-birthdate,name']]).cursor).toEqual({ direction: 'after', at });
    expect(parse([['_sort', '-birthdate,name'], ['_cursor', encodeCursor(sort, { direction: 'before' })]]).cursor).toEqual({ direction: 'before' });
  });

  it('refuses a cursor of another sort, a key of the wrong kind, and _offset beside it (400)', () => {
    const cursor = encodeCursor(sort, { direction: 'after', at: { keys: ['1970-01-01', 'x'], id: 'p-1' } });
    expect(() => parse([['_sort', '-birthdate,name'], ['_cursor', cursor]])).toThrow(/Invalid _cursor: its value for 'birthdate'/);
    expect(() => parse([['_sort', 'name'], ['_cursor', encodeCursor(sort, { direction: 'before' })]])).toThrow(/another _sort/);
    expect(() => parse([['_cursor', encodeCursor([], { direction: 'before' })], ['_offset', '0']])).toThrow(/cannot be combined/);
  });
});
