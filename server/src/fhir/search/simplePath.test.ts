import fhirpath from 'fhirpath';
import r4model from 'fhirpath/fhir-context/r4/index.js';
import type { FhirResource, Resource } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { demoResources } from '../../demo/demoData.js';
import { toAuditEvent } from '../audit.js';
import { ourSearchParameters, readConformanceResources } from '../conformance.js';
import { exampleResources } from '../profiles/examples.js';
import { CLINICAL_TYPES } from '../resourceTypes.js';
import { SearchParamRegistry } from './registry.js';
import { compileSimplePath } from './simplePath.js';

const registry = SearchParamRegistry.withStandard(ourSearchParameters(readConformanceResources()));

/** Shapes FHIRPath treats specially: nulls in repeating primitives, extension-only primitives, repeated references. */
const edgeCases: FhirResource[] = [
  { resourceType: 'Patient', id: 'edge-1', name: [{ given: ['Ana', null as unknown as string, 'Luz'], _given: [null, { extension: [{ url: 'urn:x', valueString: 'y' }] }, null] } as never, { family: 'Ruiz' }], active: false },
  { resourceType: 'Patient', id: 'edge-2', _birthDate: { extension: [{ url: 'urn:x', valueString: 'unknown' }] } } as never,
  {
    resourceType: 'AuditEvent',
    type: { code: 'rest' },
    recorded: '2026-01-01T00:00:00Z',
    agent: [{ requestor: true, who: { reference: 'Patient/p1' } }, { requestor: false, who: { reference: 'Patient/p1' } }],
    source: { observer: { display: 'x' } },
    entity: [{ what: { reference: 'Patient/p1' } }, { what: { reference: 'Task/t1' } }],
  },
  { resourceType: 'Patient', id: 'edge-4', deceasedBoolean: true, telecom: [{ system: 'email', value: 'a@example.org' }, { system: 'phone', value: '555' }, { value: 'no system' }] },
  { resourceType: 'Patient', id: 'edge-5', deceasedBoolean: false, telecom: [{ system: 'phone', value: '1' }, { system: 'phone', value: '2' }] },
  { resourceType: 'Patient', id: 'edge-6', deceasedDateTime: '2026-03-01T10:00:00Z', telecom: [{ _system: { extension: [{ url: 'urn:x', valueString: 'y' }] }, value: 'x' } as never] },
  { resourceType: 'ServiceRequest', id: 'edge-7', status: 'active', intent: 'order', subject: { reference: 'Patient/p1' }, occurrencePeriod: { start: '2026-01-01', end: '2026-02-01' } },
  { resourceType: 'ServiceRequest', id: 'edge-8', status: 'active', intent: 'order', subject: { reference: 'Patient/p1' }, occurrenceDateTime: '2026-01-05' },
  { resourceType: 'Observation', id: 'edge-9', status: 'final', code: { text: 'x' }, valueQuantity: { value: 5, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' }, effectiveDateTime: '2026-01-01' },
  { resourceType: 'Observation', id: 'edge-10', status: 'final', code: { text: 'x' }, valueCodeableConcept: { coding: [{ system: 'urn:x', code: 'y' }] }, effectivePeriod: { start: '2026-01-01' } },
  { resourceType: 'Condition', id: 'edge-11', subject: { reference: 'Patient/p1' }, onsetAge: { value: 40, unit: 'a', system: 'http://unitsofmeasure.org', code: 'a' }, abatementString: 'resolved' },
  { resourceType: 'Task', id: 'edge-3', status: 'requested', intent: 'order', for: { identifier: { system: 'urn:x', value: '1' } }, restriction: { period: { end: '2026-02-01' } } },
];

const auditEvents: Resource[] = [
  toAuditEvent({ interaction: 'read', resourceType: 'Task', id: 't1', patient: 'Patient/p1', status: 200, auth: { kind: 'user', clientId: 'app', fhirUser: 'Practitioner/x', tokenId: 'tok', scopes: [], roles: [] } as never }, new Date()),
  toAuditEvent({ interaction: 'login', clientId: 'c', failed: true, status: 401 }, new Date()),
  toAuditEvent({ interaction: 'operation', operation: '$submit', resourceType: 'ServiceRequest', status: 201 }, new Date()),
];

const resources = [...demoResources(), ...exampleResources(), ...edgeCases, ...auditEvents];

describe('simple path evaluation of search parameters', () => {
  it('gives what FHIRPath gives for every search parameter on every demo, example and edge-case resource', () => {
    let compared = 0;
    for (const resource of resources) {
      for (const def of registry.forType(resource.resourceType)) {
        const fast = compileSimplePath(def.expression);
        if (!fast) continue;
        const reference = (fhirpath.compile(def.expression, r4model) as (r: unknown) => unknown[])(resource).flat();
        expect(fast(resource), `${resource.resourceType}.${def.code}: ${def.expression}`).toEqual(reference);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(2_000);
  });

  it('takes plain paths, choice elements last, casts, reference-type and value filters and their unions; leaves other functions to FHIRPath', () => {
    const simple = (type: string, code: string) => compileSimplePath(registry.get(type, code)!.expression) !== undefined;
    expect(simple('AuditEvent', 'agent')).toBe(true);
    expect(simple('AuditEvent', 'patient')).toBe(true); // a union of two reference-type filters
    expect(simple('Task', 'due')).toBe(true); // through BackboneElement and Period
    expect(simple('ServiceRequest', 'occurrence')).toBe(true); // occurrence[x], the last step
    expect(simple('Patient', 'death-date')).toBe(true); // `as dateTime`
    expect(simple('Patient', 'email')).toBe(true); // where(system='email')
    expect(simple('Patient', 'deceased')).toBe(true); // exists() and != false
    expect(compileSimplePath('(Task.input.value as Quantity)')).toBeUndefined(); // would also take an Age
    expect(compileSimplePath('(Task.input.value as dateTime)')).toBeDefined();
    expect(compileSimplePath('(Patient.name as HumanName)')).toBeUndefined(); // a cast of an element that is no choice
    expect(compileSimplePath('Observation.value.code')).toBeUndefined(); // a choice element before the last step
    expect(compileSimplePath('Patient.name.nosuchelement')).toBeUndefined();
    const covered = CLINICAL_TYPES.flatMap((t) => registry.forType(t)).filter((d) => compileSimplePath(d.expression)).length;
    const all = CLINICAL_TYPES.flatMap((t) => registry.forType(t)).length;
    expect(covered / all).toBeGreaterThan(0.8);
  });
});
