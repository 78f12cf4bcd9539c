import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Resource, StructureDefinition } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { PROFILES_DIR, readConformanceResources } from '../server/src/fhir/conformance.js';
import { conformanceResources } from '../server/src/fhir/profiles/definitions.js';
import { exampleResources } from '../server/src/fhir/profiles/examples.js';
import { createResourceValidator } from '../server/src/fhir/resourceValidator.js';
import { PROFILES } from '../server/src/fhir/systems.js';

const published = readConformanceResources();
const profiles = published.filter((r): r is StructureDefinition => r.resourceType === 'StructureDefinition');
const validator = createResourceValidator(profiles);
const errors = (r: Resource) => validator.validate(r).filter((i) => i.severity === 'error' || i.severity === 'fatal');

describe('profiles/', () => {
  it('the committed JSON is what scripts/build-profiles.ts generates (no drift)', () => {
    for (const generated of conformanceResources()) {
      const file = join(PROFILES_DIR, `${generated.resourceType}-${generated.id}.json`);
      expect(JSON.parse(readFileSync(file, 'utf8')), file).toEqual(JSON.parse(JSON.stringify(generated)));
    }
  });

  it('has a StructureDefinition for each profile the issue names, with a snapshot', () => {
    for (const url of Object.values(PROFILES)) {
      const sd = profiles.find((p) => p.url === url);
      expect(sd?.snapshot?.element.length, url).toBeGreaterThan(10);
    }
  });

  it('the R2 reason CodeSystem has exactly the six codes', () => {
    const cs = published.find((r) => r.id === 'second-opinion-reason' && r.resourceType === 'CodeSystem') as unknown as { concept: { code: string }[] };
    expect(cs.concept.map((c) => c.code)).toEqual(['surgery-necessity', 'serious-condition', 'unclear-diagnosis', 'not-improving', 'persistent-concerns', 'other']);
  });

  it('every conformance resource is itself valid R4', () => {
    const v = createResourceValidator();
    for (const r of published) expect(v.validate(r).filter((i) => i.severity === 'error'), `${r.resourceType}/${r.id}`).toEqual([]);
  });

  it.each(readdirSync(join(PROFILES_DIR, 'examples')))('example %s is valid against its profile', (file) => {
    const example = JSON.parse(readFileSync(join(PROFILES_DIR, 'examples', file), 'utf8')) as Resource;
    expect(example.meta?.profile?.length).toBe(1);
    expect(errors(example)).toEqual([]);
  });

  it('checks contained resources of types the server does not serve (their definitions are indexed when first needed)', () => {
    const v = createResourceValidator();
    const withContained = (medication: Record<string, unknown>) =>
      ({ resourceType: 'Basic', code: { text: 'x' }, contained: [{ resourceType: 'Medication', id: 'm1', ...medication }] }) as unknown as Resource;
    expect(v.validate(withContained({ status: 'active' })).filter((i) => i.severity === 'error')).toEqual([]);
    const found = JSON.stringify(v.validate(withContained({ status: 'active', notAnElement: true })));
    expect(found).toContain('notAnElement');
  });

  it('names each error inside a Bundle or Parameters by the entry that holds it, once', () => {
    const v = createResourceValidator();
    const bundle = {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [
        { resource: { resourceType: 'Patient', gender: 'female' } },
        { resource: { resourceType: 'Patient', gender: 'sometimes' } },
        { resource: { resourceType: 'Condition', subject: { reference: 'Patient/p' }, onsetDateTime: 'last Tuesday' } },
      ],
    } as unknown as Resource;
    const expressions = (r: Resource) => v.validate(r).filter((i) => i.severity === 'error').flatMap((i) => i.expression ?? []);
    // A required binding (which only the fhir package checks) and a format error (which both validators find, once here).
    expect(expressions(bundle).sort()).toEqual(['Bundle.entry[1].resource.gender', 'Bundle.entry[2].resource.onset[x]']);
    const parameters = { resourceType: 'Parameters', parameter: [{ name: 'request', resource: bundle }, { name: 'who', part: [{ name: 'patient', resource: { resourceType: 'Patient', gender: 'never' } }] }] } as unknown as Resource;
    expect(expressions(parameters).sort()).toEqual([
      'Parameters.parameter[0].resource.entry[1].resource.gender',
      'Parameters.parameter[0].resource.entry[2].resource.onset[x]',
      'Parameters.parameter[1].part[0].resource.gender',
    ]);
    // Medplum names a bundled meta.profile that is not an array without the entry's index; reported once, placed.
    const malformed = { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', meta: { profile: 'x' } } }, { resource: { resourceType: 'Patient', meta: { profile: 5 } } }] } as unknown as Resource;
    expect(expressions(malformed).sort()).toEqual(['Bundle.entry[0].resource.meta.profile', 'Bundle.entry[1].resource.meta.profile']);
  });

  it('a Task missing what the profile requires is refused, naming the element', () => {
    const task = exampleResources().find((r) => r.resourceType === 'Task') as Resource & { focus?: unknown; businessStatus?: unknown };
    const { focus: _f, businessStatus: _b, ...broken } = task;
    const found = JSON.stringify(errors(broken as Resource));
    expect(found).toContain('Task.focus');
    expect(found).toContain('Task.businessStatus');
  });

  it('a second-opinion ServiceRequest without requester or reason is refused by its profile', () => {
    const sr = exampleResources().find((r) => r.resourceType === 'ServiceRequest') as Resource & Record<string, unknown>;
    const { requester: _r, reasonCode: _c, ...rest } = sr;
    const found = JSON.stringify(errors(rest as Resource));
    expect(found).toContain('ServiceRequest.requester');
    expect(found).toContain('ServiceRequest.reasonCode');
  });
});
