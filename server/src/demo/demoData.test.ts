import { describe, expect, it } from 'vitest';
import { createResourceValidator } from '../fhir/resourceValidator.js';
import { demoResources, npi } from './demoData.js';

describe('demo data', () => {
  it('every demo resource is valid FHIR R4', () => {
    const validator = createResourceValidator();
    const problems = demoResources().flatMap((r) => validator.validate(r).map((i) => `${r.resourceType}/${r.id}: ${i.diagnostics}`));
    expect(problems).toEqual([]);
  });
  it('ids are unique and NPIs pass the Luhn check', () => {
    const keys = demoResources().map((r) => `${r.resourceType}/${r.id}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(npi(123456789)).toMatch(/^\d{10}$/);
  });
});
