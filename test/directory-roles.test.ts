import type { Practitioner, PractitionerRole } from 'fhir/r4.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identify } from '../server/src/auth/userDirectory.js';
import type { AccessContext, UserRole } from '../server/src/fhir/request.js';
import { SearchParamRegistry } from '../server/src/fhir/search/registry.js';
import { CODE_SYSTEMS } from '../server/src/fhir/systems.js';
import type { FhirStore } from '../server/src/storage/FhirStore.js';
import { openStore } from '../server/src/storage/openStore.js';
import { rolesOf } from '../server/src/workflow/directory.js';
import { staffOrganizationsOf, worksForPlan } from '../server/src/workflow/planStaff.js';
import { STORE_DRIVERS } from './helpers/stores.js';

/**
 * A practitioner may hold more PractitionerRoles than one page of the directory (a hospitalist credentialed at many
 * sites, a coordinator with clinical roles). Whatever reads their roles reads all of them: the role that matters is
 * given an id that sorts after every other, so that it is on the last page.
 */
describe.each(STORE_DRIVERS)('directory reads of a practitioner with many roles on $name', (driver) => {
  const config = driver.config();
  let store: FhirStore;
  const practitioner = 'Practitioner/many-roles';
  const role = (id: string, organization: string, code: UserRole): PractitionerRole => ({
    resourceType: 'PractitionerRole',
    id,
    active: true,
    practitioner: { reference: practitioner },
    organization: { reference: organization },
    code: [{ coding: [{ system: CODE_SYSTEMS.userRole, code }] }],
  });

  beforeAll(async () => {
    store = await openStore(config, SearchParamRegistry.withStandard());
    await store.update({ resourceType: 'Practitioner', id: 'many-roles', name: [{ family: 'Many' }] } as Practitioner);
    const clinical = Array.from({ length: 130 }, (_, i) => role(`a-clinical-${String(i).padStart(3, '0')}`, 'Organization/clinic', 'treating-provider'));
    const staff = Array.from({ length: 60 }, (_, i) => role(`b-staff-${String(i).padStart(3, '0')}`, 'Organization/plan-a', 'um-clinician'));
    await store.createMany([...clinical, ...staff, role('z-coordinator', 'Organization/plan-b', 'grievance-coordinator')]);
  });
  afterAll(async () => {
    await store?.close();
    await driver.cleanup(config);
  });

  const actor: AccessContext = { kind: 'user', clientId: 'test', scopes: ['user/*.rs'], fhirUser: practitioner, roles: ['um-clinician'] };

  it('rolesOf reads every role, past the first pages', async () => {
    const roles = await rolesOf(store, 'many-roles');
    expect(roles).toHaveLength(191);
    expect(roles.map((r) => r.id)).toContain('z-coordinator');
  });

  it('the user directory gives a signed-in practitioner the role codes of all their roles', async () => {
    const identity = await identify(store, practitioner);
    expect(identity?.roles.sort()).toEqual(['grievance-coordinator', 'treating-provider', 'um-clinician']);
  });

  it('R17: the plans a practitioner is staff of include the one whose role is past the first page of staff roles', async () => {
    expect((await staffOrganizationsOf(store, actor)).sort()).toEqual(['Organization/plan-a', 'Organization/plan-b']);
    expect(await worksForPlan(store, actor, 'Organization/plan-b')).toBe(true);
    expect(await worksForPlan(store, actor, 'Organization/plan-c')).toBe(false);
  });
});
