import type { Location, Practitioner, PractitionerRole, Reference } from 'fhir/r4.js';
import type { Professional } from '../domain/model.js';
import { PRIMARY_CARE_SPECIALTIES } from '../domain/network.js';
import { parseLiteral } from '../fhir/references.js';
import { CODE_SYSTEMS, EXTENSIONS, IDENTIFIER_SYSTEMS } from '../fhir/systems.js';
import type { FhirStore, SearchQuery } from '../storage/FhirStore.js';
import { everyMatch } from '../storage/pages.js';


const ROLES_PAGE = 100;
const NEW_PATIENTS = 'http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/newpatients';

export const specialtiesOf = (role: PractitionerRole): string[] =>
  (role.specialty ?? []).flatMap((s) => s.coding ?? []).filter((c) => c.system === CODE_SYSTEMS.nucc && c.code).map((c) => c.code!);

const hasQualification = (p: Practitioner | undefined, code: string) =>
  (p?.qualification ?? []).some((q) => q.code.coding?.some((c) => c.system === CODE_SYSTEMS.qualification && c.code === code));

/** Plan-Net `newpatients`: accepting unless it says `nopt` (not accepting). */
function acceptingNewPatients(role: PractitionerRole): boolean {
  const ext = role.extension?.find((e) => e.url === NEW_PATIENTS);
  const code = ext?.extension?.find((e) => e.url === 'acceptingPatients')?.valueCodeableConcept?.coding?.[0]?.code;
  return code !== 'nopt';
}

export const networksOf = (role: PractitionerRole): string[] =>
  (role.extension ?? [])
    .filter((e) => e.url === EXTENSIONS.planNetNetworkReference)
    .map((e) => parseLiteral(e.valueReference?.reference)?.[1])
    .filter((id): id is string => Boolean(id));

/** A practitioner's name as the directory and the letters give it ("Dr. Hanna Schmidt"). */
export function practitionerName(practitioner: Practitioner | undefined): string | undefined {
  const name = practitioner?.name?.[0];
  return (name && [name.prefix?.join(' '), name.given?.join(' '), name.family].filter(Boolean).join(' ')) || undefined;
}

/** A Plan-Net style PractitionerRole (with its Practitioner and Location) as a domain Professional. */
export function professionalFrom(role: PractitionerRole, practitioner: Practitioner | undefined, location: Location | undefined): Professional {
  const specialties = specialtiesOf(role);
  return {
    practitionerId: parseLiteral(role.practitioner?.reference)?.[1] ?? role.id!,
    practitionerRoleId: role.id!,
    name: practitionerName(practitioner) ?? role.practitioner?.display ?? role.id!,
    specialties,
    isPrimaryCare: specialties.some((s) => PRIMARY_CARE_SPECIALTIES.includes(s)),
    organizationId: parseLiteral(role.organization?.reference)?.[1],
    networkIds: networksOf(role),
    boardCertified: hasQualification(practitioner, 'board-certified'),
    mediCalEnrolled: hasQualification(practitioner, 'medi-cal-enrolled') || Boolean(practitioner?.identifier?.some((i) => i.system === IDENTIFIER_SYSTEMS.mediCalProvider)),
    active: role.active !== false && practitioner?.active !== false,
    acceptingNewPatients: acceptingNewPatients(role),
    position: location?.position ? { latitude: location.position.latitude, longitude: location.position.longitude } : undefined,
  };
}

/** Loads the Practitioners and Locations of roles and maps them (two queries, not one per role). */
export async function professionalsFrom(store: FhirStore, roles: PractitionerRole[]): Promise<Professional[]> {
  const load = async <T>(type: string, refs: (Reference | undefined)[]) => {
    const ids = [...new Set(refs.map((r) => parseLiteral(r?.reference)).filter((r) => r?.[0] === type).map((r) => r![1]))];
    if (!ids.length) return new Map<string, T>();
    const { resources } = await store.search({ resourceType: type, clauses: [{ kind: 'id', ids }], sort: [], count: ids.length, offset: 0, total: false });
    return new Map(resources.map((r) => [r.id!, r as T]));
  };
  const practitioners = await load<Practitioner>('Practitioner', roles.map((r) => r.practitioner));
  const locations = await load<Location>('Location', roles.map((r) => r.location?.[0]));
  return roles.map((role) =>
    professionalFrom(role, practitioners.get(parseLiteral(role.practitioner?.reference)?.[1] ?? ''), locations.get(parseLiteral(role.location?.[0]?.reference)?.[1] ?? '')),
  );
}

/** Active roles with any of the given NUCC specialties: the candidates for an opinion. */
export async function rolesWithSpecialty(store: FhirStore, specialties: string[]): Promise<PractitionerRole[]> {
  if (!specialties.length) return [];
  const { resources } = await store.search({
    resourceType: 'PractitionerRole',
    clauses: [
      { kind: 'token', param: 'specialty', values: specialties.map((s) => `specialty|${CODE_SYSTEMS.nucc}|${s}`), not: false },
      { kind: 'token', param: 'active', values: ['active|*|true'], not: false },
    ],
    sort: [],
    count: 1000,
    offset: 0,
    total: false,
  });
  return resources as PractitionerRole[];
}

/**
 * The NUCC specialties of a directory reference: a PractitionerRole's own, or those of every role of a
 * Practitioner (a Practitioner carries no specialty in Plan-Net).
 */
export async function specialtiesOfReference(store: FhirStore, ref: Reference | undefined): Promise<string[]> {
  const literal = parseLiteral(ref?.reference);
  if (literal?.[0] === 'PractitionerRole') {
    const role = (await store.find('PractitionerRole', literal[1])) as PractitionerRole | undefined;
    return role ? specialtiesOf(role) : [];
  }
  if (literal?.[0] !== 'Practitioner') return [];
  return [...new Set((await rolesOf(store, literal[1])).flatMap(specialtiesOf))];
}

/** Every PractitionerRole of a Practitioner in the directory, read a page at a time (some hold more roles than a page). */
export async function rolesOf(store: FhirStore, practitionerId: string): Promise<PractitionerRole[]> {
  const query: SearchQuery = {
    resourceType: 'PractitionerRole',
    clauses: [{ kind: 'reference', param: 'practitioner', values: [`practitioner|Practitioner/${practitionerId}`] }],
    sort: [],
    count: ROLES_PAGE,
    offset: 0,
    total: false,
  };
  return (await everyMatch(store, query, ROLES_PAGE)) as PractitionerRole[];
}

/**
 * The name of the professional a PractitionerRole or a Practitioner reference names, as a letter gives it:
 * the role's practitioner display, else the practitioner's own name. Undefined when none is stored.
 */
export async function professionalNameOf(store: FhirStore, ref: Reference | undefined): Promise<string | undefined> {
  const literal = parseLiteral(ref?.reference);
  if (literal?.[0] === 'Practitioner') {
    const practitioner = (await store.find('Practitioner', literal[1])) as Practitioner | undefined;
    return practitioner && (practitionerName(practitioner) ?? ref?.display ?? ref?.reference);
  }
  if (literal?.[0] !== 'PractitionerRole') return undefined;
  const role = (await store.find('PractitionerRole', literal[1])) as PractitionerRole | undefined;
  if (!role) return undefined;
  if (role.practitioner?.display) return role.practitioner.display;
  const practitioner = parseLiteral(role.practitioner?.reference);
  const named = practitioner?.[0] === 'Practitioner' ? practitionerName((await store.find('Practitioner', practitioner[1])) as Practitioner | undefined) : undefined;
  return named ?? role.practitioner?.reference ?? ref?.display ?? ref?.reference;
}
