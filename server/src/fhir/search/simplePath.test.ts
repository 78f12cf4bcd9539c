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

  it('takes plain paths, reference-type filters and their unions; leaves functions and choice elements to FHIRPath', () => {
    const simple = (type: string, code: string) => compileSimplePath(registry.get(type, code)!.expression) !== undefined;
    expect(simple('AuditEvent', 'agent')).toBe(true);
    expect(simple('AuditEvent', 'patient')).toBe(true); // a union of two reference-type filters
    expect(simple('Task', 'due')).toBe(true); // through BackboneElement and Period
    expect(simple('ServiceRequest', 'occurrence')).toBe(false); // occurrence[x]
    expect(simple('Patient', 'death-date')).toBe(false); // `as dateTime`
    expect(simple('Patient', 'email')).toBe(false); // where(system='email')
    expect(compileSimplePath('Patient.name.nosuchelement')).toBeUndefined();
    const covered = CLINICAL_TYPES.flatMap((t) => registry.forType(t)).filter((d) => compileSimplePath(d.expression)).length;
    const all = CLINICAL_TYPES.flatMap((t) => registry.forType(t)).length;
    expect(covered / all).toBeGreaterThan(0.7);
  });
});
