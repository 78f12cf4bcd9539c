import type { Organization, PractitionerRole } from 'fhir/r4.js';
import { planByPayorIdentifier, type PlanId } from '../domain/plans.js';
import { parseLiteral } from '../fhir/references.js';
import type { AccessContext, UserRole } from '../fhir/request.js';
import { CODE_SYSTEMS, IDENTIFIER_SYSTEMS } from '../fhir/systems.js';
import type { FhirStore, SearchQuery } from '../storage/FhirStore.js';
import { everyMatch } from '../storage/pages.js';

/** The roles that act for a plan (R10, R11, R17): they act only on their own plan's cases, grievances and figures. */
export const PLAN_STAFF_ROLES: UserRole[] = ['um-clinician', 'medical-director', 'grievance-coordinator'];

const STAFF_ROLES_PAGE = 50;

export const isPlanStaff = (actor: AccessContext): boolean => actor.roles.some((r) => PLAN_STAFF_ROLES.includes(r));

/**
 * The active plan-staff PractitionerRoles of the actor's practitioner (fhirUser), whatever the token
 * kind: a patient-bound launch of a UM clinician is still that clinician. No practitioner, no roles.
 */
async function staffRoles(store: FhirStore, actor: AccessContext, organization?: string): Promise<PractitionerRole[]> {
  const literal = parseLiteral(actor.fhirUser);
  if (!literal || literal[0] !== 'Practitioner') return [];
  const query: SearchQuery = {
    resourceType: 'PractitionerRole',
    clauses: [
      { kind: 'reference', param: 'practitioner', values: [`practitioner|${actor.fhirUser}`] },
      // Only the staff roles are read: a practitioner may also hold many clinical ones.
      { kind: 'token', param: 'role', values: PLAN_STAFF_ROLES.map((role) => `role|${CODE_SYSTEMS.userRole}|${role}`), not: false },
      ...(organization ? [{ kind: 'reference' as const, param: 'organization', values: [`organization|${organization}`] }] : []),
    ],
    sort: [],
    count: STAFF_ROLES_PAGE,
    offset: 0,
    total: false,
  };
  const resources = (await everyMatch(store, query, STAFF_ROLES_PAGE)) as PractitionerRole[];
  return resources.filter((r) => r.active !== false && r.code?.some((cc) => cc.coding?.some((cd) => PLAN_STAFF_ROLES.includes(cd.code as UserRole))));
}

/** The actor holds a plan-staff PractitionerRole at the plan's Organization (`Organization/<id>`). */
export async function worksForPlan(store: FhirStore, actor: AccessContext, planOrganization: string): Promise<boolean> {
  return (await staffRoles(store, actor, planOrganization)).length > 0;
}

/** The plan Organizations (`Organization/<id>`) where the actor holds an active plan-staff role. */
export async function staffOrganizationsOf(store: FhirStore, actor: AccessContext): Promise<string[]> {
  const organizations = (await staffRoles(store, actor)).map((role) => role.organization?.reference);
  return [...new Set(organizations.filter((o): o is string => parseLiteral(o)?.[0] === 'Organization'))];
}

/** The plans whose staff the actor is: the plan identifiers of the Organizations of its plan-staff roles. */
export async function staffPlansOf(store: FhirStore, actor: AccessContext): Promise<PlanId[]> {
  const plans = new Set<PlanId>();
  for (const role of await staffRoles(store, actor)) {
    const literal = parseLiteral(role.organization?.reference);
    if (literal?.[0] !== 'Organization') continue;
    const org = (await store.find('Organization', literal[1])) as Organization | undefined;
    const value = org?.identifier?.find((i) => i.system === IDENTIFIER_SYSTEMS.planId)?.value;
    const plan = value ? planByPayorIdentifier(value) : undefined;
    if (plan) plans.add(plan.id);
  }
  return [...plans];
}
