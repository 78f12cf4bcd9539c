import type { Patient, Practitioner, RelatedPerson } from 'fhir/r4.js';
import { USER_ROLES, type UserRole } from '../fhir/request.js';
import { parseLiteral } from '../fhir/references.js';
import { CODE_SYSTEMS } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { rolesOf } from '../workflow/directory.js';

export interface UserIdentity {
  fhirUser: string;
  display: string;
  roles: UserRole[];
  /** For members and representatives: the patient they act for. */
  patient?: string;
}

/**
 * Who a user is and what roles they hold, from FHIR data: a Practitioner's roles are the
 * CODE_SYSTEMS.userRole codes on their PractitionerRoles; a Patient is a member; a RelatedPerson
 * is a member acting for their patient.
 */
export async function identify(store: FhirStore, fhirUser: string): Promise<UserIdentity | undefined> {
  const literal = parseLiteral(fhirUser);
  if (!literal) return undefined;
  const [type, id] = literal;
  if (type === 'Patient') {
    const p = (await store.find('Patient', id)) as Patient | undefined;
    return p && { fhirUser, display: nameOf(p.name), roles: ['member'], patient: id };
  }
  if (type === 'RelatedPerson') {
    const r = (await store.find('RelatedPerson', id)) as RelatedPerson | undefined;
    return r && { fhirUser, display: nameOf(r.name), roles: ['member'], patient: parseLiteral(r.patient.reference)?.[1] };
  }
  if (type !== 'Practitioner') return undefined;
  const practitioner = (await store.find('Practitioner', id)) as Practitioner | undefined;
  if (!practitioner) return undefined;
  const roles = new Set<UserRole>();
  for (const role of await rolesOf(store, id)) {
    if (role.active === false) continue;
    for (const c of (role.code ?? []).flatMap((x) => x.coding ?? [])) {
      if (c.system === CODE_SYSTEMS.userRole && (USER_ROLES as readonly string[]).includes(c.code ?? '')) roles.add(c.code as UserRole);
    }
  }
  return { fhirUser, display: nameOf(practitioner.name), roles: [...roles] };
}

function nameOf(names: { given?: string[]; family?: string; prefix?: string[] }[] | undefined): string {
  const n = names?.[0];
  return n ? [n.prefix?.join(' '), n.given?.join(' '), n.family].filter(Boolean).join(' ') : '(unnamed)';
}
