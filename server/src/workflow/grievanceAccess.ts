import type { Coding, Task } from 'fhir/r4.js';
import type { ResourceAccessRule } from '../fhir/context.js';
import { isGrievanceTask } from '../fhir/guard.js';
import type { AccessContext } from '../fhir/request.js';
import { parseSearch } from '../fhir/search/parse.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import type { SearchClause } from '../storage/FhirStore.js';
import { CANONICAL_BASE, GRIEVANCE_TASK_CODE } from '../fhir/systems.js';

/**
 * Who may see a member's grievance (R17): it may be about a provider or a plan decision, so it is not case data for
 * everyone with a user scope on Task. Shown to
 *   - the staff of the plan that owns it (`AccessContext.staffOf`), not to another plan's;
 *   - the member it is for, or their representative (a member identity with that patient);
 *   - whoever filed it (its requester);
 *   - plan administration, auditors, and the plan's own backend systems (a system client acting for no organization).
 * Everyone else, a delegated group's system included, is answered as if it did not exist (404) and searches leave
 * it out. Other Tasks are untouched. Applies to every interaction; writes are refused besides (guard.ts).
 */
export function grievanceAccessRule(registry: SearchParamRegistry): ResourceAccessRule {
  return {
    mayAccess: (req, _ctx, resource) => !isGrievanceTask(resource) || seesEveryGrievance(req.auth) || isParty(req.auth, resource as Task),
    searchClauses(req) {
      if (seesEveryGrievance(req.auth)) return [];
      const clauses = (params: [string, string][]) => parseSearch('Task', params, registry, { strict: true, baseUrl: req.baseUrl }).query.clauses;
      const alternatives: SearchClause[][] = [clauses([['code:not', `${GRIEVANCE_TASK_CODE.system}|${GRIEVANCE_TASK_CODE.code}`]])];
      const { staffOf, fhirUser } = req.auth;
      if (staffOf?.length) alternatives.push(clauses([['owner', staffOf.join(',')]]));
      if (fhirUser) alternatives.push(clauses([['requester', fhirUser]]));
      const member = memberPatient(req.auth);
      if (member) alternatives.push(clauses([['subject', member]]));
      return [{ kind: 'anyOf', alternatives }];
    },
  };
}

/** meta.tag of a grievance's records (its letters, its Provenances): the marker code, and one code per party that may read them. */
export const GRIEVANCE_PARTY_SYSTEM = `${CANONICAL_BASE}/CodeSystem/grievance-party`;
const MARKER = 'grievance';

/** The tags that keep a grievance's record to its parties (`Organization/…`, `Patient/…`, `Practitioner/…` references). */
export const grievancePartyTags = (parties: string[]): Coding[] => [MARKER, ...new Set(parties)].map((code) => ({ system: GRIEVANCE_PARTY_SYSTEM, code }));

/**
 * A grievance's records (its letters quote the member's words and give the resolution; its Provenances name who filed
 * it) are shown to the parties their tags name (the plan, the member, whoever filed it or is sent a letter) and to those
 * who see every grievance; to others they are missing ids, left out of searches. Records without the tags (a case's
 * notices and Provenances) are untouched. Only plan administration changes or deletes one by hand.
 */
export function grievanceRecordAccessRule(registry: SearchParamRegistry, resourceType: 'Communication' | 'DocumentReference' | 'Provenance'): ResourceAccessRule {
  return {
    mayAccess(req, _ctx, resource) {
      const parties = resource.meta?.tag?.filter((t) => t.system === GRIEVANCE_PARTY_SYSTEM).map((t) => t.code) ?? [];
      if (!parties.includes(MARKER)) return true;
      // Written by the grievance operations only: a PUT or PATCH without the tags would show it to everyone.
      if (req.interaction === 'update' || req.interaction === 'patch' || req.interaction === 'delete') return req.auth.roles.includes('plan-admin');
      if (seesEveryGrievance(req.auth)) return true;
      return callerParties(req.auth).some((code) => parties.includes(code));
    },
    searchClauses(req) {
      if (seesEveryGrievance(req.auth)) return [];
      const clauses = (params: [string, string][]) => parseSearch(resourceType, params, registry, { strict: true, baseUrl: req.baseUrl }).query.clauses;
      const alternatives = [clauses([['_tag:not', `${GRIEVANCE_PARTY_SYSTEM}|${MARKER}`]])];
      const own = callerParties(req.auth);
      if (own.length) alternatives.push(clauses([['_tag', own.map((code) => `${GRIEVANCE_PARTY_SYSTEM}|${code}`).join(',')]]));
      return [{ kind: 'anyOf', alternatives }];
    },
  };
}

/** The party codes a caller answers to: the plans they are staff of, themselves, the member they are. */
const callerParties = (auth: AccessContext): string[] => [...(auth.staffOf ?? []), ...(auth.fhirUser ? [auth.fhirUser] : []), ...(memberPatient(auth) ? [memberPatient(auth)!] : [])];

const seesEveryGrievance = (auth: AccessContext): boolean =>
  auth.roles.some((r) => r === 'plan-admin' || r === 'auditor') || (auth.kind === 'system' && !auth.organization);

/** `Patient/x` for the member (or representative) signed in: a member identity, not a practitioner with a patient in context. */
const memberPatient = (auth: AccessContext): string | undefined => (auth.roles.includes('member') && auth.patient ? `Patient/${auth.patient}` : undefined);

/** The parties of a grievance, as references: the plan that owns it, the member it is for, whoever filed it. */
export const grievanceParties = (grievance: Task): string[] =>
  [grievance.owner, grievance.for, grievance.requester].map((r) => r?.reference).filter((r): r is string => Boolean(r));

const isParty = (auth: AccessContext, grievance: Task): boolean => callerParties(auth).some((code) => grievanceParties(grievance).includes(code));
