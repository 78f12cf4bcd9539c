import { describe, expect, it } from 'vitest';
import type { AccessContext } from '../fhir/request.js';
import { createAccessPolicy } from './policy.js';

const policy = createAccessPolicy((type) => type === 'Task' || type === 'Patient');

/** The compartments of a resource, counting how often the policy asked for them. */
function compartments(...patients: string[]) {
  const asked = { count: 0 };
  return { asked, of: () => (asked.count++, patients) };
}

const practitioner: AccessContext = { kind: 'user', clientId: 'app', scopes: ['user/Task.rs'], fhirUser: 'Practitioner/p1', roles: ['treating-provider'] };
const patientApp: AccessContext = { kind: 'patient', clientId: 'app', scopes: ['patient/Task.rs'], patient: 'm1', roles: [] };

describe('access policy: resource-level checks', () => {
  it('lets a user grant read any Task without evaluating its compartments', () => {
    const c = compartments('Patient/m2');
    expect(policy.mayAccess(practitioner, 'Task', 'read', c.of)).toBe(true);
    expect(c.asked.count).toBe(0);
  });

  it("holds a patient grant to the patient in context, evaluating the resource's compartments once", () => {
    const own = compartments('Patient/m1', 'Patient/m9');
    expect(policy.mayAccess(patientApp, 'Task', 'read', own.of)).toBe(true);
    expect(own.asked.count).toBe(1);
    const other = compartments('Patient/m2');
    expect(policy.mayAccess(patientApp, 'Task', 'read', other.of)).toBe(false);
    expect(other.asked.count).toBe(1);
  });

  it('refuses a compartment type that names no patient to a patient grant', () => {
    expect(policy.mayAccess(patientApp, 'Task', 'read', compartments().of)).toBe(false);
  });

  it('a query-restricted user grant does not lift a patient grant off the patient in context', () => {
    const restricted: AccessContext = { kind: 'user', clientId: 'app', scopes: ['patient/*.cruds', 'user/Task.rus?status=requested'], fhirUser: 'Practitioner/p1', patient: 'm1', roles: [] };
    expect(policy.mayAccess(restricted, 'Task', 'read', compartments('Patient/m2').of)).toBe(false);
    expect(policy.mayAccess(restricted, 'Task', 'update', compartments('Patient/m2').of)).toBe(false);
    expect(policy.mayAccess(restricted, 'Task', 'read', compartments('Patient/m1').of)).toBe(true);
  });

  it('judges each interaction by the grants that carry it: patient writes stay with the patient beside user reads', () => {
    const mixed: AccessContext = { kind: 'user', clientId: 'app', scopes: ['patient/*.cruds', 'user/*.rs'], fhirUser: 'Practitioner/p1', patient: 'm1', roles: [] };
    const other = () => compartments('Patient/m2').of;
    expect(policy.mayAccess(mixed, 'Task', 'read', other())).toBe(true);
    expect(policy.mayAccess(mixed, 'Task', 'search', other())).toBe(true);
    for (const write of ['create', 'update', 'patch', 'delete'] as const) expect(policy.mayAccess(mixed, 'Task', write, other())).toBe(false);
    expect(policy.patientCompartment(mixed, 'Task', 'update')).toBe('Patient/m1');
    expect(policy.patientCompartment(mixed, 'Task', 'search')).toBeUndefined();
    // A user-level read does not widen a patient-level search, nor a patient-level read narrow a user-level update.
    const split: AccessContext = { ...mixed, scopes: ['patient/Task.s', 'user/Task.r', 'patient/Task.r', 'user/Task.u'] };
    expect(policy.patientCompartment(split, 'Task', 'search')).toBe('Patient/m1');
    expect(policy.patientCompartment(split, 'Task', 'update')).toBeUndefined();
  });
});
