import type { AccessContext, UserRole } from '../fhir/request.js';
import type { SearchClause } from '../storage/FhirStore.js';
import { isPlanStaff } from './planStaff.js';

/**
 * Whose records a user may see when user/ scopes grant a whole type (SMART: a user scope grants what the user
 * may access; HIPAA's minimum necessary, 45 CFR 164.502(b)). Not every member of every plan:
 *   - plan administration and auditors: every member;
 *   - plan staff (R10, R11, R17): the members of the plans they are staff of, by a Coverage whose payor is that plan;
 *   - every user: the patient the EHR launched them with (the EHR vouches for it);
 *   - a practitioner in a clinical role (treating provider, second-opinion professional): the patients whose PCP they
 *     are, whose CareTeam they are on, whose ServiceRequests they asked for or are to perform (R1, R14), or whose
 *     Tasks they own (an information request, BSP D.IV), each directly or through one of their PractitionerRoles.
 * A user with both kinds of role sees both; one with neither, the launch patient alone. Members and representatives
 * are held to their own compartment by the scopes' policy. A backend system acting for an IPA or medical group (R18,
 * its registration's organization) sees the members of that group; the plan's own systems (no organization) everyone.
 *
 * The answer is a clause on Patient (any of its alternatives makes a patient visible), or undefined when the caller
 * is not limited. The FHIR layer holds searches, reads, history and writes of the patient compartment's types to it.
 */
export function patientsVisibleTo(auth: AccessContext): SearchClause | undefined {
  if (auth.kind === 'system') return auth.organization ? { kind: 'anyOf', alternatives: [[membersOfGroup(auth.organization)]] } : undefined;
  if (auth.kind !== 'user' || auth.roles.includes('member') || auth.roles.some((r) => r === 'plan-admin' || r === 'auditor')) return undefined;
  const alternatives: SearchClause[][] = [];
  if (auth.patient) alternatives.push([{ kind: 'id', ids: [auth.patient] }]);
  if (isPlanStaff(auth) && auth.staffOf?.length) alternatives.push([referredBy('Coverage', 'beneficiary', { kind: 'reference', param: 'payor', values: auth.staffOf.map((o) => `payor|${o}`) })]);
  // Staff see as staff; a search checks every alternative for each record, so the clinical ones only where they apply.
  const practitioner = auth.fhirUser?.startsWith('Practitioner/') && auth.roles.some((r) => CLINICAL_ROLES.includes(r)) ? auth.fhirUser : undefined;
  if (practitioner) {
    alternatives.push([names('general-practitioner', practitioner)]);
    alternatives.push([referredBy('CareTeam', 'patient', names('participant', practitioner))]);
    alternatives.push([referredBy('ServiceRequest', 'patient', names('requester', practitioner))]);
    alternatives.push([referredBy('ServiceRequest', 'patient', names('performer', practitioner))]);
    alternatives.push([referredBy('Task', 'patient', names('owner', practitioner))]);
  }
  return { kind: 'anyOf', alternatives };
}

/** Members whose Coverage names the organization as their IPA or medical group (its `class` value), as R18 delegation reads it. */
const membersOfGroup = (organization: string): SearchClause => referredBy('Coverage', 'beneficiary', { kind: 'string', param: 'class-value', mode: 'exact', values: [organization] });

/** The roles in which a practitioner treats patients or gives an opinion on them. */
const CLINICAL_ROLES: UserRole[] = ['treating-provider', 'second-opinion-provider'];

/** The resource's `param` names the practitioner, or one of the practitioner's PractitionerRoles. */
const names = (param: string, practitioner: string): SearchClause => ({
  kind: 'anyOf',
  alternatives: [
    [{ kind: 'reference', param, values: [`${param}|${practitioner}`] }],
    [{ kind: 'chain', param, targetType: 'PractitionerRole', clause: { kind: 'reference', param: 'practitioner', values: [`practitioner|${practitioner}`] } }],
  ],
});

/** A patient some `sourceType` resource refers to through `refParam` and that `clause` matches (`_has`). */
const referredBy = (sourceType: string, refParam: string, clause: SearchClause): SearchClause => ({ kind: 'reverseChain', sourceType, refParam, clause });
