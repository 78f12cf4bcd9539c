import type { Patient, Resource, Task } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../server/src/server.js';
import { createdId, foundIds } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

/**
 * Token search on an element of type `code` with `system|code`: the system is the one the element's
 * required binding implies (R4 search.html §3.1.1.4.10, "code | (implicit)"), as conformance suites
 * such as Inferno send it.
 */
const GENDER = 'http://hl7.org/fhir/administrative-gender';
const TASK_STATUS = 'http://hl7.org/fhir/task-status';

describe.each(STORE_DRIVERS)('token search with the implicit system of a code on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();
  const marker = `implicit${Date.now()}`;
  const ids: Record<string, string> = {};
  const create = <T extends Resource>(resource: T) => createdId(server.fhirBase, resource);
  const found = (query: string) => foundIds(server.fhirBase, query);
  const patients = (gender: string) => found(`Patient?family=${marker}&gender=${encodeURIComponent(gender)}`);

  beforeAll(async () => {
    server = await startFhirOnlyServer(config);
    for (const gender of ['female', 'male'] as const) ids[gender] = await create<Patient>({ resourceType: 'Patient', name: [{ family: marker }], gender });
    ids.noGender = await create<Patient>({ resourceType: 'Patient', name: [{ family: marker }] });
    const task = (status: Task['status']): Task => ({ resourceType: 'Task', status, intent: 'order', identifier: [{ system: 'urn:test', value: marker }] });
    ids.requested = await create(task('requested'));
    ids.cancelled = await create(task('cancelled'));
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  it('gender=<administrative-gender>|female finds the female Patient, as gender=female and gender=|female do', async () => {
    expect(await patients(`${GENDER}|female`)).toEqual([ids.female]);
    expect(await patients('female')).toEqual([ids.female]);
    expect(await patients('|female')).toEqual([ids.female]);
    expect(await patients(`${GENDER}|female,${GENDER}|male`)).toEqual([ids.female, ids.male].sort());
  });

  it('another system, or a code the system does not give, finds nothing', async () => {
    expect(await patients('http://example.org/other|female')).toEqual([]);
    expect(await patients(`${GENDER}|femme`)).toEqual([]);
  });

  it('gender=<administrative-gender>| finds every Patient with a gender', async () => {
    expect(await patients(`${GENDER}|`)).toEqual([ids.female, ids.male].sort());
  });

  it('gender:not=<administrative-gender>|female finds the others, those without a gender too', async () => {
    expect(await found(`Patient?family=${marker}&gender:not=${encodeURIComponent(`${GENDER}|female`)}`)).toEqual([ids.male, ids.noGender].sort());
  });

  it('Task status=<task-status>|requested finds the requested Task only', async () => {
    const tasks = (status: string) => found(`Task?identifier=urn:test|${marker}&status=${encodeURIComponent(status)}`);
    expect(await tasks(`${TASK_STATUS}|requested`)).toEqual([ids.requested]);
    expect(await tasks('requested')).toEqual([ids.requested]);
    expect(await tasks('http://hl7.org/fhir/request-status|requested')).toEqual([]);
  });
});
