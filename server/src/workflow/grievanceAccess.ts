import type { Task } from 'fhir/r4.js';
import type { ResourceAccessRule } from '../fhir/context.js';
import { isGrievanceTask } from '../fhir/guard.js';
import type { AccessContext } from '../fhir/request.js';
import { parseSearch } from '../fhir/search/parse.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import type { SearchClause } from '../storage/FhirStore.js';
import { GRIEVANCE_TASK_CODE } from '../fhir/systems.js';

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

const seesEveryGrievance = (auth: AccessContext): boolean =>
  auth.roles.some((r) => r === 'plan-admin' || r === 'auditor') || (auth.kind === 'system' && !auth.organization);

/** `Patient/x` for the member (or representative) signed in: a member identity, not a practitioner with a patient in context. */
const memberPatient = (auth: AccessContext): string | undefined => (auth.roles.includes('member') && auth.patient ? `Patient/${auth.patient}` : undefined);

function isParty(auth: AccessContext, grievance: Task): boolean {
  const owner = grievance.owner?.reference;
  if (owner && auth.staffOf?.includes(owner)) return true;
  if (auth.fhirUser && grievance.requester?.reference === auth.fhirUser) return true;
  const member = memberPatient(auth);
  return member !== undefined && grievance.for?.reference === member;
}
