import type { OperationOutcome, Organization, Patient, Practitioner, Resource } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ourSearchParameters, readConformanceResources } from '../server/src/fhir/conformance.js';
import { Indexer } from '../server/src/fhir/search/indexer.js';
import { SearchParamRegistry } from '../server/src/fhir/search/registry.js';
import type { RunningServer } from '../server/src/server.js';
import { openConnection, type StoreConfig } from '../server/src/storage/connect.js';
import type { SearchQuery } from '../server/src/storage/FhirStore.js';
import { migrate } from '../server/src/storage/sql/schema.js';
import { SqlFhirStore } from '../server/src/storage/sql/SqlFhirStore.js';
import { createdId, foundIds, raw } from './helpers/fhir.js';
import { dropSchema, postgresConfig, STORE_DRIVERS, TEST_DATABASE_URL } from './helpers/stores.js';
import { startFhirOnlyServer } from './helpers/testServer.js';

/**
 * `phonetic` (R4 individual-phonetic, Organization-phonetic): "a portion of either family or given name using some kind
 * of phonetic matching algorithm". Matched by Double Metaphone codes; the pairs below share one (Garcia and Garsia KRS,
 * Smith and Smyth SM0, John and Jon JN), while `gar` is KR and Nguyen NKN.
 */
describe.each(STORE_DRIVERS)('phonetic search on $name', (driver) => {
  let server: RunningServer;
  const config = driver.config();
  const marker = `phonetic${Date.now()}`;
  const ids: Record<string, string> = {};
  const create = <T extends Resource>(resource: T) => createdId(server.fhirBase, resource);
  const found = (query: string) => foundIds(server.fhirBase, query);
  const patients = (value: string) => found(`Patient?identifier=urn:test|${marker}&phonetic=${encodeURIComponent(value)}`);
  const refused = async (query: string): Promise<string> => {
    const res = await raw(`${server.fhirBase}/${query}`);
    expect(res.status, query).toBe(400);
    return (res.body as OperationOutcome).issue[0].diagnostics ?? '';
  };

  beforeAll(async () => {
    server = await startFhirOnlyServer(config);
    const patient = (family: string, ...given: string[]): Patient => ({ resourceType: 'Patient', identifier: [{ system: 'urn:test', value: marker }], name: [{ family, given }] });
    ids.garcia = await create(patient('García', 'María'));
    ids.smith = await create(patient('Smith', 'John'));
    ids.nguyen = await create(patient('Nguyen', 'Linh'));
    ids.practitioner = await create<Practitioner>({ resourceType: 'Practitioner', identifier: [{ system: 'urn:test', value: marker }], name: [{ family: 'Hernández-López', given: ['Catherine'] }] });
    ids.organization = await create<Organization>({ resourceType: 'Organization', identifier: [{ system: 'urn:test', value: marker }], name: 'Kaiser Permanente' });
  });
  afterAll(async () => {
    await server?.close();
    await driver.cleanup(config);
  });

  it('finds names that sound alike: Garsia finds García, Smyth finds Smith, Jon finds John, Mariah finds María', async () => {
    expect(await patients('Garsia')).toEqual([ids.garcia]);
    expect(await patients('Smyth')).toEqual([ids.smith]);
    expect(await patients('Jon')).toEqual([ids.smith]);
    expect(await patients('mariah')).toEqual([ids.garcia]);
  });

  it('needs every word of a value to sound like a part of the name; comma-separated values are alternatives', async () => {
    expect(await patients('Jon Smyth')).toEqual([ids.smith]);
    expect(await patients('Jon Garsia')).toEqual([]);
    expect(await patients('Garsia,Smyth')).toEqual([ids.garcia, ids.smith].sort());
  });

  it('is no prefix match: gar finds no García, and a name that sounds different finds nothing', async () => {
    expect(await patients('gar')).toEqual([]);
    expect(await patients('Smi')).toEqual([]);
    expect(await patients('Gonzalez')).toEqual([]);
    expect(await patients('123')).toEqual([]);
  });

  it('works on Practitioners (each word of a double surname) and Organizations', async () => {
    expect(await found(`Practitioner?identifier=urn:test|${marker}&phonetic=Lopes`)).toEqual([ids.practitioner]);
    expect(await found(`Practitioner?identifier=urn:test|${marker}&phonetic=Kathryn%20Hernandez`)).toEqual([ids.practitioner]);
    expect(await found(`Organization?identifier=urn:test|${marker}&phonetic=Kaizer`)).toEqual([ids.organization]);
  });

  it('refuses the string modifiers and sorting on phonetic; :missing still works', async () => {
    expect(await refused('Patient?phonetic:exact=Garcia')).toMatch(/':exact' is not supported on 'phonetic'/);
    expect(await refused('Patient?phonetic:contains=arc')).toMatch(/':contains' is not supported on 'phonetic'/);
    expect(await refused('Patient?_sort=phonetic')).toMatch(/Sorting by 'phonetic' is not supported/);
    expect(await found(`Patient?identifier=urn:test|${marker}&phonetic:missing=false`)).toEqual([ids.garcia, ids.smith, ids.nguyen].sort());
  });

  it('says that sorting by _tag, _security (token) or _profile (uri) is not supported, not that they are unknown', async () => {
    expect(await refused('Patient?_sort=_tag')).toBe("Sorting by token parameter '_tag' is not supported");
    expect(await refused('Patient?_sort=-_security')).toBe("Sorting by token parameter '_security' is not supported");
    expect(await refused('Patient?_sort=_profile')).toBe("Sorting by uri parameter '_profile' is not supported");
    expect(await refused('Patient?_sort=nonesuch')).toMatch(/Unknown sort parameter 'nonesuch'/);
  });
});

const registry = SearchParamRegistry.withStandard(ourSearchParameters(readConformanceResources()));
const drivers: { name: string; config: () => StoreConfig }[] = [
  { name: 'pglite', config: () => ({ driver: 'pglite', dataDir: 'memory://' }) },
  ...(TEST_DATABASE_URL ? [{ name: 'postgres', config: postgresConfig }] : []),
];

describe.each(drivers)('migration 9 on $name', ({ config }) => {
  it('gives the stored rows of the types with a phonetic parameter (Patients, Organizations) the sound tokens of their names and drops their phonetic string rows', async () => {
    const own = config();
    const c = await openConnection(own);
    try {
      await migrate(c, new Indexer(registry), 8);
      const store = new SqlFhirStore(c, new Indexer(registry));
      const [garcia, smith] = await store.createMany([
        { resourceType: 'Patient', name: [{ family: 'Garcia', given: ['Ana'] }] } as Patient,
        { resourceType: 'Patient', name: [{ family: 'Smith' }] } as Patient,
      ]);
      const org = await store.create({ resourceType: 'Organization', name: 'Kaiser Permanente' } as Organization);
      await store.delete('Patient', smith.id!);
      // As stored before: no sound tokens, a string row for each name part.
      await c.query(`UPDATE resources SET tokens = ARRAY(SELECT t FROM unnest(tokens) t WHERE t NOT LIKE 'phonetic||%')`);
      await c.query(`INSERT INTO sp_string (res_type, id, param, value, exact) VALUES ('Patient', $1, 'phonetic', 'garcia', 'Garcia'), ('Patient', $1, 'phonetic', 'ana', 'Ana'), ('Organization', $2, 'phonetic', 'kaiser permanente', 'Kaiser Permanente')`, [garcia.id, org.id]);
      const byPhonetic = async (resourceType: string, sound: string) => {
        const query: SearchQuery = { resourceType, clauses: [{ kind: 'token', param: 'phonetic', values: [`phonetic||${sound}`], not: false }], sort: [], count: 10, offset: 0, total: false };
        return (await store.search(query)).resources.map((r) => r.id);
      };
      expect([await byPhonetic('Patient', 'KRS'), await byPhonetic('Organization', 'KSR')]).toEqual([[], []]);
      await migrate(c, new Indexer(registry));
      expect([await byPhonetic('Patient', 'KRS'), await byPhonetic('Patient', 'AN'), await byPhonetic('Organization', 'KSR'), await byPhonetic('Organization', 'PRMNNT')]).toEqual([[garcia.id], [garcia.id], [org.id], [org.id]]);
      expect(Number((await c.query(`SELECT count(*) AS n FROM sp_string WHERE param = 'phonetic'`)).rows[0].n)).toBe(0);
      const tokens = (await c.query(`SELECT tokens FROM resources WHERE res_type = 'Patient' AND id = $1`, [garcia.id])).rows[0].tokens as string[];
      expect(tokens.filter((t) => t.startsWith('phonetic|')).sort()).toEqual(['phonetic||AN', 'phonetic||KRS']);
    } finally {
      await c.close();
      await dropSchema(own);
    }
  });
});
