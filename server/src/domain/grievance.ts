import type { UserRole } from '../fhir/request.js';
import { ReviewRefusal, type TaskStatus } from './reviewPath.js';

/**
 * R17 (PHC VI.E): a member's grievance about a second opinion, free of FHIR, HTTP and SQL. What it is about, where
 * it stands, who may move it and how it ended. Its clocks are in clock.ts (grievanceDeadlines).
 */

/** What the grievance is about: PHC VI.E names the PCP who does not grant the request; every notice of action names the others (R10). */
export const GRIEVANCE_CATEGORIES = ['pcp-not-granted', 'plan-decision', 'deadline-missed', 'other'] as const;
export type GrievanceCategory = (typeof GRIEVANCE_CATEGORIES)[number];

/** How it was resolved (28 CCR 1300.68(d)(3): a written resolution with the reasons). */
export const GRIEVANCE_OUTCOMES = ['upheld', 'partly-upheld', 'not-upheld'] as const;
export type GrievanceOutcome = (typeof GRIEVANCE_OUTCOMES)[number];

export type GrievanceStep = 'received' | 'acknowledged' | 'resolved';
export type GrievanceAction = 'acknowledge' | 'resolve';

/** Who may file: the member or their representative (a member identity), a provider for them, the coordinator taking it by phone (28 CCR 1300.68(a)). */
export const GRIEVANCE_FILERS: UserRole[] = ['member', 'treating-provider', 'grievance-coordinator'];

/** PHC VI.E: the plan's Grievance Coordinator handles grievances. */
export const GRIEVANCE_HANDLERS: UserRole[] = ['grievance-coordinator'];

const RULES: Record<GrievanceAction, { from: GrievanceStep[]; to: GrievanceStep; clause: string }> = {
  acknowledge: { from: ['received'], to: 'acknowledged', clause: '28 CCR 1300.68(d)(1)' },
  resolve: { from: ['acknowledged'], to: 'resolved', clause: 'H&S 1368.01; 28 CCR 1300.68(d)(3)' },
};

export const GRIEVANCE_TASK_STATUS: Record<GrievanceStep, TaskStatus> = { received: 'requested', acknowledged: 'in-progress', resolved: 'completed' };

/** The step an action leads to, or a refusal: an action out of order names the step and what is allowed; a wrong role names the role. */
export function grievanceTransition(step: GrievanceStep, action: GrievanceAction, roles: UserRole[]): GrievanceStep {
  const rule = RULES[action];
  if (!roles.some((r) => GRIEVANCE_HANDLERS.includes(r))) {
    throw new ReviewRefusal('role', `Only ${GRIEVANCE_HANDLERS.join(' or ')} may ${action} a grievance (PHC VI.E)`);
  }
  if (!rule.from.includes(step)) {
    const allowed = (Object.keys(RULES) as GrievanceAction[]).filter((a) => RULES[a].from.includes(step));
    throw new ReviewRefusal('illegal-transition', `Cannot ${action} a grievance in step '${step}'; allowed now: ${allowed.join(', ') || 'none (the grievance is resolved)'}`);
  }
  return rule.to;
}
