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
    expect(policy.mayAccess(practitioner, 'Task', c.of)).toBe(true);
    expect(c.asked.count).toBe(0);
  });

  it("holds a patient grant to the patient in context, evaluating the resource's compartments once", () => {
    const own = compartments('Patient/m1', 'Patient/m9');
    expect(policy.mayAccess(patientApp, 'Task', own.of)).toBe(true);
    expect(own.asked.count).toBe(1);
    const other = compartments('Patient/m2');
    expect(policy.mayAccess(patientApp, 'Task', other.of)).toBe(false);
    expect(other.asked.count).toBe(1);
  });

  it('refuses a compartment type that names no patient to a patient grant', () => {
    expect(policy.mayAccess(patientApp, 'Task', compartments().of)).toBe(false);
  });
});
