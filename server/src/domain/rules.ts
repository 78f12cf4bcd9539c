import { computeDeadlines } from './clock.js';
import { DomainRuleError, type Finding, REASON_CATEGORIES, type SecondOpinionDecision, type SecondOpinionInput } from './model.js';
import { disqualifications, isInNetwork, qualifiedInNetworkProviders, tierOf } from './network.js';
import type { PlanProfile } from './plans.js';

const NAMED_REQUESTERS = new Set(['member', 'authorized-representative', 'pcp', 'treating-specialist']);
const requesterClause = (plan: PlanProfile) =>
  ({ hpsj: 'HPSJ II.A', phc: 'PHC VI.A', ant: 'ANT Policy', bsp: 'BSP C.I-II' })[plan.id];
const reasonClause = (plan: PlanProfile) =>
  ({ hpsj: 'HPSJ II.B.1-5', phc: 'PHC VI.A.1-5', ant: 'ANT II.A-E', bsp: 'BSP C.II.a-e' })[plan.id];
const oonClause = (plan: PlanProfile) => ({ hpsj: 'HPSJ III.D', phc: 'PHC VI.C', ant: 'ANT IV', bsp: 'BSP C.I, D.VI.b' })[plan.id];
const priorAuthClause = (plan: PlanProfile) => ({ hpsj: 'HPSJ III.B', phc: 'PHC VI.A', ant: 'ANT IV', bsp: 'BSP D.I' })[plan.id];
const noCostClause = (plan: PlanProfile) => ({ hpsj: 'HPSJ II.A', phc: 'PHC VI.A', ant: 'ANT Policy, IV', bsp: 'BSP D.VIII' })[plan.id];

/** R2: at least one reason; the five categories or "other" with words. */
export function checkReasons(plan: PlanProfile, input: SecondOpinionInput): Finding {
  if (!input.reasons.length) throw new DomainRuleError('R2', 'ServiceRequest.reasonCode', 'A second-opinion request needs a reason (R2)');
  for (const reason of input.reasons) {
    if (!REASON_CATEGORIES.includes(reason.category)) throw new DomainRuleError('R2', 'ServiceRequest.reasonCode', `Unknown reason category '${reason.category}' (R2)`);
    if (reason.category === 'other' && !reason.text?.trim()) throw new DomainRuleError('R2', 'ServiceRequest.reasonCode.text', 'A reason of "other" needs a description (R2)');
  }
  return { rule: 'R2', clause: reasonClause(plan), text: `Reason: ${input.reasons.map((r) => r.category).join(', ')}` };
}

/** R1: the policies name the member, a representative, the PCP and treating specialists; others go to UM review, never dropped. */
export function checkRequester(plan: PlanProfile, input: SecondOpinionInput): { accepted: boolean; finding: Finding } {
  const accepted = NAMED_REQUESTERS.has(input.requesterKind);
  const clause = input.requesterKind === 'authorized-representative' ? 'PHC VI.A' : requesterClause(plan);
  const text = accepted
    ? `Requested by the ${input.requesterKind.replace('-', ' ')}`
    : 'The requester is not one the policy names; the request goes to UM review';
  return { accepted, finding: { rule: 'R1', clause, text } };
}

/**
 * The decision for a second-opinion request under one plan's rules (R1-R9, R12, R22): whether
 * authorization is needed, who qualifies, and when the decision is due.
 */
export function decideSecondOpinion(plan: PlanProfile, input: SecondOpinionInput): SecondOpinionDecision {
  const findings: Finding[] = [];
  const requester = checkRequester(plan, input);
  findings.push(requester.finding, checkReasons(plan, input));
  if (input.behavioralHealth) findings.push({ rule: 'R22', clause: 'PHC; 42 CFR 438.910', text: 'Behavioral health request: the same rules apply (parity)' });
  const qualified = qualifiedInNetworkProviders(plan, input);
  const requested = input.requestedProfessional;
  const requestedTier = requested ? tierOf(plan, input.member, requested) : undefined;
  const requestedProblems = requested ? disqualifications(plan, input, requested) : [];
  const outOfNetwork = requestedTier ? !isInNetwork(requestedTier) : qualified.length === 0;
  const outOfNetworkJustified = outOfNetwork && qualified.length === 0;

  if (requested && requestedProblems.length) {
    findings.push({ rule: 'R4', clause: 'HPSJ II.A, PHC VI.B, ANT Definitions, BSP B.1', text: `The requested professional may not qualify: ${requestedProblems.join('; ')}` });
  }
  if (outOfNetwork) {
    findings.push({ rule: 'R8', clause: priorAuthClause(plan), text: 'Out of network: prior authorization is required' });
    findings.push(
      outOfNetworkJustified
        ? { rule: 'R7', clause: oonClause(plan), text: 'No qualified professional is available in network, so an out-of-network professional may be authorized (42 CFR 438.206)' }
        : { rule: 'R7', clause: 'PHC VI.C', text: `Qualified professionals are available in network (${qualified.length}); the plan may limit the choice to them` },
    );
  }

  // An authorized representative stands in for the member (PHC VI.A).
  const memberPcpChoice = (input.requesterKind === 'member' || input.requesterKind === 'authorized-representative') && input.careQuestioned.kind === 'primary-care';
  const straightThrough = !outOfNetwork && requester.accepted && requestedProblems.length === 0 &&
    (plan.routing.inNetworkStraightThrough || (plan.routing.memberDesignatedPcpStraightThrough && memberPcpChoice));
  const authorizationRequired = outOfNetwork || (!plan.routing.inNetworkStraightThrough && !(plan.routing.memberDesignatedPcpStraightThrough && memberPcpChoice));
  if (!outOfNetwork) {
    findings.push(
      straightThrough
        ? { rule: 'R3', clause: plan.routing.clause, text: 'In network: no authorization is needed' }
        : { rule: plan.routing.inNetworkStraightThrough ? 'R4' : 'R3', clause: plan.routing.clause, text: 'The request goes to a UM clinician for review' },
    );
  }
  findings.push({ rule: 'R12', clause: noCostClause(plan), text: 'No cost to the member' });

  const expedited = input.priority !== 'routine';
  const deadlines = computeDeadlines(plan, input.receivedAt, { expedited, imminentThreat: input.imminentThreat, outOfNetwork });
  findings.push({ rule: 'R9', clause: plan.timeframes.clause, text: `Decision due ${deadlines.decisionDueAt} (${deadlines.considered.find((c) => c.dueAt === deadlines.decisionDueAt)?.source})` });

  return {
    requesterAccepted: requester.accepted,
    reviewRoute: straightThrough ? 'straight-through' : 'um-review',
    authorizationRequired,
    outcome: straightThrough ? 'approved' : 'pended',
    requestedTier,
    requestedQualified: requested ? requestedProblems.length === 0 : undefined,
    qualifiedInNetworkProviders: qualified,
    outOfNetworkJustified,
    outOfNetwork,
    memberCost: 0,
    deadlines,
    findings,
  };
}
