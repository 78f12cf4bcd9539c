import { describe, expect, it } from 'vitest';
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
