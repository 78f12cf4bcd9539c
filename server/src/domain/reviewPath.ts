import type { UserRole } from '../fhir/request.js';
import type { PlanProfile } from './plans.js';

/** Where a case stands (R11, BSP D.III-VII) and after the decision (R13, R14). */
export type CaseStep =
  | 'received' | 'um-review' | 'info-requested' | 'info-received' | 'medical-director-review' | 'consultative-review'
  | 'approved' | 'modified' | 'denied' | 'withdrawn' | 'transport-arranged' | 'completed';

export type ReviewAction =
  | 'approve' | 'request-info' | 'answer-info' | 'escalate' | 'deny' | 'modify' | 'extend' | 'refer-consultative-review' | 'withdraw' | 'post-report';

export type TaskStatus = 'requested' | 'received' | 'accepted' | 'rejected' | 'cancelled' | 'in-progress' | 'on-hold' | 'completed';

const OPEN: CaseStep[] = ['received', 'um-review', 'info-requested', 'info-received', 'medical-director-review', 'consultative-review'];
const AUTHORIZED: CaseStep[] = ['approved', 'modified', 'transport-arranged'];
/** BSP D.VI-VII: once with the Medical Director, the determination is the Medical Director's. */
const PHYSICIAN_REVIEW: CaseStep[] = ['medical-director-review', 'consultative-review'];

/** Roles that may take an adverse decision under the plan (R10: H&S 1367.01(e); BSP C.I, D.VI-VII). */
export function adverseDeciders(plan: PlanProfile): UserRole[] {
  // Every plan here demands a physician; BSP names the Medical Director or a physician designee.
  return plan.adverseDecisionBy === 'licensed-competent-professional' ? ['medical-director', 'um-clinician'] : ['medical-director'];
}

interface Rule {
  from: CaseStep[];
  to: CaseStep | 'unchanged';
  roles: (plan: PlanProfile, step: CaseStep) => UserRole[];
  clause: string;
}

/** R11 (BSP D.V, D.VII.a): UM clinicians and a delegated group approve at UM review; the Medical Director alone once the case is with them. */
const approvers = (_plan: PlanProfile, step: CaseStep): UserRole[] =>
  PHYSICIAN_REVIEW.includes(step) ? ['medical-director'] : ['um-clinician', 'medical-director', 'delegated-group'];

/** The review path as data: who may take which action from which step. Nobody can bypass it. */
export const REVIEW_RULES: Record<ReviewAction, Rule> = {
  approve: { from: ['received', 'um-review', 'info-received', 'medical-director-review', 'consultative-review'], to: 'approved', roles: approvers, clause: 'BSP D.V, D.VII.a' },
  'request-info': { from: ['received', 'um-review', 'medical-director-review'], to: 'info-requested', roles: () => ['um-clinician', 'medical-director'], clause: 'BSP D.IV' },
  'answer-info': { from: ['info-requested'], to: 'info-received', roles: () => ['treating-provider', 'um-clinician'], clause: 'BSP D.IV' },
  escalate: { from: ['received', 'um-review', 'info-received'], to: 'medical-director-review', roles: () => ['um-clinician'], clause: 'BSP D.VI' },
  deny: { from: ['received', 'um-review', 'info-received', 'medical-director-review', 'consultative-review'], to: 'denied', roles: adverseDeciders, clause: 'H&S 1367.01(e); BSP D.VII.b' },
  modify: { from: ['received', 'um-review', 'info-received', 'medical-director-review', 'consultative-review'], to: 'modified', roles: adverseDeciders, clause: 'R10: steering to the network is an adverse decision' },
  extend: { from: OPEN, to: 'unchanged', roles: () => ['um-clinician', 'medical-director'], clause: '42 CFR 438.210(d)(1)(ii)' },
  'refer-consultative-review': { from: ['medical-director-review'], to: 'consultative-review', roles: () => ['medical-director'], clause: 'BSP D.VI' },
  withdraw: { from: [...OPEN, ...AUTHORIZED], to: 'withdrawn', roles: () => ['member', 'treating-provider'], clause: 'R1: the requester may withdraw' },
  'post-report': { from: AUTHORIZED, to: 'completed', roles: () => ['second-opinion-provider'], clause: 'R14: HPSJ III.G, ANT VI' },
};

export const TASK_STATUS: Record<CaseStep, TaskStatus> = {
  received: 'requested',
  'um-review': 'requested',
  'info-requested': 'on-hold',
  'info-received': 'in-progress',
  'medical-director-review': 'in-progress',
  'consultative-review': 'in-progress',
  approved: 'accepted',
  modified: 'accepted',
  'transport-arranged': 'accepted',
  denied: 'rejected',
  withdrawn: 'cancelled',
  completed: 'completed',
};

export class ReviewRefusal extends Error {
  constructor(
    readonly kind: 'illegal-transition' | 'role',
    message: string,
  ) {
    super(message);
  }
}

export function allowedActions(plan: PlanProfile, step: CaseStep, roles: UserRole[]): ReviewAction[] {
  return (Object.keys(REVIEW_RULES) as ReviewAction[]).filter((a) => REVIEW_RULES[a].from.includes(step) && REVIEW_RULES[a].roles(plan, step).some((r) => roles.includes(r)));
}

/** The step an action leads to, or a refusal naming the current step and what is allowed (R10, R11). */
export function transition(plan: PlanProfile, step: CaseStep, action: ReviewAction, roles: UserRole[]): CaseStep {
  const rule = REVIEW_RULES[action];
  if (!rule.from.includes(step)) {
    const possible = (Object.keys(REVIEW_RULES) as ReviewAction[]).filter((a) => REVIEW_RULES[a].from.includes(step));
    throw new ReviewRefusal('illegal-transition', `Cannot ${action} a case in step '${step}'; allowed now: ${possible.join(', ') || 'none (the case is closed)'}`);
  }
  const allowedRoles = rule.roles(plan, step);
  if (!roles.some((r) => allowedRoles.includes(r))) {
    throw new ReviewRefusal('role', `Only ${allowedRoles.join(' or ')} may ${action} in step '${step}' (${rule.clause})`);
  }
  return rule.to === 'unchanged' ? step : rule.to;
}

export type Delegation = PlanProfile['delegatedUm'][number];

/**
 * R18 (BSP D.IX): the delegation under which a backend client may decide a member's case: the plan
 * delegates UM to the member's own IPA/medical group, and the client acts for that group.
 * None when the plan delegates nothing, the member has no group, or the client acts for another group or none.
 */
export function delegationFor(plan: PlanProfile, actingFor: string | undefined, memberGroupId: string | undefined): Delegation | undefined {
  if (!memberGroupId || actingFor !== memberGroupId) return undefined;
  return plan.delegatedUm.find((d) => d.organization === memberGroupId);
}
