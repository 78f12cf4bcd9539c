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

/**
 * 42 CFR 438.406(b)(2)(ii): the categories that involve clinical issues, decided by a health care professional with
 * the clinical expertise. A PCP not granting a second opinion is a clinical judgment about the member's care; a plan
 * denial or modification is one of medical necessity (R10). A missed deadline is not. `other` is free text about the
 * process and is taken as not clinical: a coordinator who finds a clinical issue in it files it again under its category.
 */
export const CLINICAL_GRIEVANCE_CATEGORIES: readonly GrievanceCategory[] = ['pcp-not-granted', 'plan-decision'];

/** A physician of the plan (its Medical Director or physician designee) resolves a clinical grievance. */
export const CLINICAL_GRIEVANCE_DECIDERS: UserRole[] = ['medical-director'];

/** A category not known is taken as clinical: the physician's review is the safe side. */
export const isClinicalGrievance = (category: string | undefined): boolean => !GRIEVANCE_CATEGORIES.some((c) => c === category) || CLINICAL_GRIEVANCE_CATEGORIES.some((c) => c === category);

/** Who may take an action on a grievance of the category: the coordinator acknowledges; a physician resolves a clinical one. */
export function grievanceHandlers(action: GrievanceAction, category: string | undefined): UserRole[] {
  return action === 'resolve' && isClinicalGrievance(category) ? CLINICAL_GRIEVANCE_DECIDERS : GRIEVANCE_HANDLERS;
}

/** The one acting on a grievance, as the rule needs them. */
export interface GrievanceActor {
  roles: UserRole[];
  /** 42 CFR 438.406(b)(2)(i): they reviewed or decided the case the grievance is about (the lookups are the caller's). */
  involvedInCase: boolean;
}

const RULES: Record<GrievanceAction, { from: GrievanceStep[]; to: GrievanceStep; clause: string }> = {
  acknowledge: { from: ['received'], to: 'acknowledged', clause: '28 CCR 1300.68(d)(1)' },
  resolve: { from: ['acknowledged'], to: 'resolved', clause: 'H&S 1368.01; 28 CCR 1300.68(d)(3)' },
};

export const GRIEVANCE_TASK_STATUS: Record<GrievanceStep, TaskStatus> = { received: 'requested', acknowledged: 'in-progress', resolved: 'completed' };

/**
 * The step an action leads to, or a refusal: a wrong role names the role (a physician for a clinical resolution); whoever
 * reviewed or decided the case may not resolve a grievance about it; an action out of order names the step and what is allowed.
 */
export function grievanceTransition(grievance: { step: GrievanceStep; category: string | undefined }, action: GrievanceAction, actor: GrievanceActor): GrievanceStep {
  const { step } = grievance;
  const rule = RULES[action];
  const handlers = grievanceHandlers(action, grievance.category);
  if (!actor.roles.some((r) => handlers.includes(r))) {
    const clause = handlers === CLINICAL_GRIEVANCE_DECIDERS ? 'a grievance involving clinical issues, 42 CFR 438.406(b)(2)(ii)' : 'a grievance (PHC VI.E)';
    throw new ReviewRefusal('role', `Only ${handlers.join(' or ')} may ${action} ${clause}`);
  }
  if (action === 'resolve' && actor.involvedInCase) {
    throw new ReviewRefusal('role', 'Who took part in the review or decision of the case may not resolve a grievance about it (42 CFR 438.406(b)(2)(i))');
  }
  if (!rule.from.includes(step)) {
    const allowed = (Object.keys(RULES) as GrievanceAction[]).filter((a) => RULES[a].from.includes(step));
    throw new ReviewRefusal('illegal-transition', `Cannot ${action} a grievance in step '${step}'; allowed now: ${allowed.join(', ') || 'none (the grievance is resolved)'}`);
  }
  return rule.to;
}
