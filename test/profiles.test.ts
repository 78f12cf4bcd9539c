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

describe('R4 rules that Medplum lets through', () => {
  const validator = createResourceValidator();
  /** The elements named by errors, for a resource as it arrives: JSON.parse keeps `__proto__` as a member. */
  const refusedAt = (json: string) =>
    validator
      .validate(JSON.parse(json) as Resource)
      .filter((i) => i.severity === 'error')
      .flatMap((i) => i.expression ?? []);
  const XHTML = 'http://www.w3.org/1999/xhtml';
  const patientWith = (div: string) => JSON.stringify({ resourceType: 'Patient', text: { status: 'generated', div } });

  it.each([
    ['a script', `<div xmlns="${XHTML}"><script>alert(1)</script>x</div>`],
    ['an event attribute', `<div xmlns="${XHTML}"><img src="#a" onerror="alert(1)"/></div>`],
    ['onclick', `<div xmlns="${XHTML}"><p onclick="go()">x</p></div>`],
    ['an iframe', `<div xmlns="${XHTML}"><iframe src="https://example.org"></iframe>x</div>`],
    ['a form', `<div xmlns="${XHTML}"><form><input name="q"/></form>x</div>`],
    ['an object', `<div xmlns="${XHTML}"><object data="x.swf"></object>x</div>`],
    ['an embed', `<div xmlns="${XHTML}"><embed src="x.swf"/>x</div>`],
    ['a base', `<div xmlns="${XHTML}"><base href="https://example.org/"/>x</div>`],
    ['a link', `<div xmlns="${XHTML}"><link rel="stylesheet" href="x.css"/>x</div>`],
    ['a meta', `<div xmlns="${XHTML}"><meta http-equiv="refresh" content="0"/>x</div>`],
    ['a style element', `<div xmlns="${XHTML}"><style>p { color: red }</style>x</div>`],
    ['an element of another namespace', `<div xmlns="${XHTML}"><svg xmlns="http://www.w3.org/2000/svg"/>x</div>`],
    ['an xlink attribute', `<div xmlns="${XHTML}"><a xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="x">x</a></div>`],
    ['a javascript: URL', `<div xmlns="${XHTML}"><a href="javascript:alert(1)">x</a></div>`],
    ['a javascript: URL split by a tab', `<div xmlns="${XHTML}"><a href="java&#9;script:alert(1)">x</a></div>`],
    ['a CDATA section (read as markup by HTML parsers)', `<div xmlns="${XHTML}"><![CDATA[ a> <img src=x onerror=alert(1)> ]]></div>`],
    ['plain text', 'Patient John Doe'],
    ['a div outside the XHTML namespace', '<div>x</div>'],
    ['a root other than div', `<p xmlns="${XHTML}">x</p>`],
    ['HTML that is not well-formed XML', `<div xmlns="${XHTML}"><p>x<br></p></div>`],
    ['no text or image (txt-2)', `<div xmlns="${XHTML}"><p> </p></div>`],
  ])('refuses narrative XHTML with %s, naming Patient.text.div', (_what, div) => {
    expect(refusedAt(patientWith(div))).toEqual(['Patient.text.div']);
  });

  it('checks every Narrative: contained, bundled and in Parameters; and accepts the allowed XHTML', () => {
    const script = { status: 'generated', div: `<div xmlns="${XHTML}"><script>alert(1)</script>x</div>` };
    const contained = { resourceType: 'Patient', contained: [{ resourceType: 'Organization', id: 'o', text: script }] };
    expect(refusedAt(JSON.stringify(contained))).toEqual(['Patient.contained[0].text.div']);
    expect(refusedAt(JSON.stringify({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient', text: script } }] }))).toEqual([
      'Bundle.entry[0].resource.text.div',
    ]);
    expect(refusedAt(JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'p', resource: contained }] }))).toEqual(['Parameters.parameter[0].resource.contained[0].text.div']);
    const allowed = [
      `<div xmlns="${XHTML}"><p>John <b>Doe</b>, <a href="https://example.org/p">record</a>, <a href="Patient/1">link</a></p></div>`,
      `<div xmlns="${XHTML}"><img src="#photo" alt=""/></div>`,
      `<div xmlns="${XHTML}" xml:lang="en"><!-- generated --><table class="grid"><tr><td style="color: red" colspan="2">1 &lt; 2</td></tr></table></div>`,
    ];
    for (const div of allowed) expect(refusedAt(patientWith(div)), div).toEqual([]);
  });

  it.each([
    ['__proto__', '{"resourceType":"Patient","__proto__":{"bogus":1}}', 'Patient.__proto__'],
    ['constructor', '{"resourceType":"Patient","constructor":{"prototype":{"x":1}}}', 'Patient.constructor'],
    ['toString', '{"resourceType":"Patient","toString":"x"}', 'Patient.toString'],
    ['hasOwnProperty', '{"resourceType":"Patient","hasOwnProperty":true}', 'Patient.hasOwnProperty'],
    ['a nested __proto__', '{"resourceType":"Condition","subject":{"reference":"Patient/x","__proto__":{"a":1}},"code":{"text":"x"}}', 'Condition.subject.__proto__'],
    ['resourceType outside a resource', '{"resourceType":"Patient","name":[{"family":"Doe","resourceType":"Patient"}]}', 'Patient.name[0].resourceType'],
  ])('refuses a member named %s like any unknown element', (_name, json, path) => {
    expect(refusedAt(json)).toEqual([path]);
  });

  it.each([
    ['two types for one choice element', '{"resourceType":"Patient","deceasedBoolean":true,"deceasedDateTime":"2020-01-01"}', 'Patient.deceased[x]'],
    ['an empty array', '{"resourceType":"Patient","name":[]}', 'Patient.name'],
    ['an empty string', '{"resourceType":"Patient","name":[{"family":""}]}', 'Patient.name[0].family'],
    ['an empty object', '{"resourceType":"Patient","maritalStatus":{}}', 'Patient.maritalStatus'],
    ['an integer beyond 32 bits', '{"resourceType":"Patient","multipleBirthInteger":99999999999}', 'Patient.multipleBirth[x]'],
    ['an unsignedInt beyond 32 bits', '{"resourceType":"Patient","photo":[{"size":4294967296}]}', 'Patient.photo[0].size'],
    [
      'a positiveInt beyond 32 bits',
      '{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"x"},"patient":{"reference":"Patient/p"},"occurrenceDateTime":"2020-01-01","protocolApplied":[{"doseNumberPositiveInt":2147483648}]}',
      'Immunization.protocolApplied[0].doseNumber[x]',
    ],
  ])('refuses %s (R4 JSON rules), naming the element', (_what, json, path) => {
    expect(refusedAt(json)).toEqual([path]);
  });

  it('reports an empty object once, and accepts primitive extensions, nulls beside them and 32-bit bounds', () => {
    // Medplum finds the empty object in an array itself, not the single one.
    expect(refusedAt('{"resourceType":"Patient","name":[{}],"maritalStatus":{}}')).toEqual(['Patient.name[0]', 'Patient.maritalStatus']);
    const valid = {
      resourceType: 'Patient',
      birthDate: '2000-01-01',
      _birthDate: { extension: [{ url: 'http://example.org/precision', valueCode: 'day' }] },
      name: [{ given: ['Ann', null], _given: [null, { id: 'g2', extension: [{ url: 'http://example.org/x', valueString: 'y' }] }] }],
      multipleBirthInteger: 2147483647,
      extension: [{ url: 'http://example.org/e', valueInteger: -2147483648 }],
    };
    expect(refusedAt(JSON.stringify(valid))).toEqual([]);
  });
});
