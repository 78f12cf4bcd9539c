import { computeDeadlines } from './clock.js';
import { type Deadlines, DomainRuleError, type Finding, type Professional, REASON_CATEGORIES, type RequesterKind, type SecondOpinionDecision, type SecondOpinionInput } from './model.js';
import { disqualifications, isInNetwork, qualifiedInNetworkProviders, tierOf } from './network.js';
import type { PlanProfile } from './plans.js';

const NAMED_REQUESTERS = new Set(['member', 'authorized-representative', 'pcp', 'treating-specialist']);
const requesterClause = (plan: PlanProfile) =>
  ({ hpsj: 'HPSJ II.A', phc: 'PHC VI.A', ant: 'ANT Policy', bsp: 'BSP C.I-II' })[plan.id];
const reasonClause = (plan: PlanProfile) =>
  ({ hpsj: 'HPSJ II.B.1-5', phc: 'PHC VI.A.1-5', ant: 'ANT II.A-E', bsp: 'BSP C.II.a-e' })[plan.id];
/** R7: each plan's clause for "in network when a qualified professional is available there, out of network only when none is". */
const oonClause = (plan: PlanProfile) => ({ hpsj: 'HPSJ III.D', phc: 'PHC VI.C', ant: 'ANT IV', bsp: 'BSP C.I, D.VI.b' })[plan.id];
const priorAuthClause = (plan: PlanProfile) => ({ hpsj: 'HPSJ III.B', phc: 'PHC VI.A', ant: 'ANT IV', bsp: 'BSP D.I' })[plan.id];
const QUALIFIED_CLAUSE = 'HPSJ II.A, PHC VI.B, ANT Definitions, BSP B.1';
const noCostClause = (plan: PlanProfile) => ({ hpsj: 'HPSJ II.A', phc: 'PHC VI.A', ant: 'ANT Policy, IV', bsp: 'BSP D.VIII' })[plan.id];

/** R2: at least one reason; the five categories or "other" with words. */
export function checkReasons(plan: PlanProfile, input: SecondOpinionInput): Finding {
  if (!input.reasons.length) throw new DomainRuleError('R2', 'ServiceRequest.reasonCode', 'A second-opinion request needs a reason (R2)');
  for (const reason of input.reasons) {
    if (!REASON_CATEGORIES.includes(reason.category)) throw new DomainRuleError('R2', 'ServiceRequest.reasonCode', `Unknown reason category '${reason.category}' (R2)`);
    if (reason.category === 'other' && !reason.text?.trim()) throw new DomainRuleError('R2', 'ServiceRequest.reasonCode.text', 'A reason of "other" needs a description (R2)');
  }
  return { rule: 'R2', clause: reasonClause(plan), text: `Reason: ${input.reasons.map((r) => (r.category === 'other' ? `other (${r.text})` : r.category)).join(', ')}` };
}

/** R1: who asks, by the record; a declared `requester-kind` is honoured only as a downgrade to "other", never to upgrade the requester. */
export function requesterKindOf(input: SecondOpinionInput): RequesterKind {
  return input.declaredRequesterKind === 'other' ? 'other' : input.requesterKind;
}

/** R1: the policies name the member, a representative, the PCP and treating specialists; others go to UM review, never dropped. */
export function checkRequester(plan: PlanProfile, input: SecondOpinionInput): { kind: RequesterKind; accepted: boolean; finding: Finding } {
  const kind = requesterKindOf(input);
  const accepted = NAMED_REQUESTERS.has(kind);
  const clause = kind === 'authorized-representative' ? 'PHC VI.A' : requesterClause(plan);
  const declared = input.declaredRequesterKind;
  const unconfirmed = declared && declared !== kind ? ` (declared '${declared}', which the record does not show)` : '';
  const text = accepted
    ? `Requested by the ${kind.replace('-', ' ')}${unconfirmed}`
    : `The requester is not one the policy names${unconfirmed}; the request goes to UM review`;
  return { kind, accepted, finding: { rule: 'R1', clause, text } };
}

interface ReviewFacts {
  requesterAccepted: boolean;
  requested?: Professional;
  requestedProblems: string[];
  /** The plan's rules let this request through without authorization (R3). */
  noAuthorization: boolean;
}

/**
 * Why an in-network request waits for a UM clinician, the first cause only; undefined when it is approved on receipt.
 * A request naming no professional never is: nobody would be authorized to give the opinion and post its report (R14).
 */
function reviewCause(plan: PlanProfile, input: SecondOpinionInput, f: ReviewFacts): Finding | undefined {
  const toUm = 'The request goes to a UM clinician for review';
  if (!f.requesterAccepted) return { rule: 'R1', clause: requesterClause(plan), text: toUm };
  if (f.requested && f.requestedProblems.length) return { rule: 'R4', clause: QUALIFIED_CLAUSE, text: toUm };
  if (input.reasons.every((r) => r.inferredFromCondition)) return { rule: 'R2', clause: reasonClause(plan), text: `No reason was stated, only a condition: ${toUm.toLowerCase()}` };
  if (!f.requested) return { rule: 'R3', clause: plan.routing.clause, text: 'No professional is named: the request goes to a UM clinician, who names a qualified one' };
  if (!f.noAuthorization) return { rule: 'R3', clause: plan.routing.clause, text: toUm };
  return undefined;
}

/**
 * R3: where an in-network request goes. Naming no professional where none needs authorizing is no
 * authorization review: the plan owes the opinion of a qualified professional in its network (HPSJ II.A,
 * III.A; PHC VI.A, VI.C; ANT Policy, III-IV) and arranges one.
 */
function routingFindings(plan: PlanProfile, straightThrough: boolean, cause: Finding | undefined, professionalToArrange: boolean): Finding[] {
  if (straightThrough) return [{ rule: 'R3', clause: plan.routing.clause, text: 'In network: no authorization is needed' }];
  if (!cause || cause.rule === 'R1') return []; // R1's own finding already says where the request goes
  if (!professionalToArrange) return [cause];
  return [cause, { rule: 'R3', clause: plan.routing.clause, text: 'In network: no authorization is needed; the plan arranges a qualified professional in its network' }];
}

/** R7: out of network only when no qualified professional is available in network (each plan's own clause). */
function outOfNetworkFindings(plan: PlanProfile, justified: boolean, qualifiedCount: number): Finding[] {
  return [
    { rule: 'R8', clause: priorAuthClause(plan), text: 'Out of network: prior authorization is required' },
    justified
      ? { rule: 'R7', clause: oonClause(plan), text: 'No qualified professional is available in network, so an out-of-network professional may be authorized (42 CFR 438.206)' }
      : { rule: 'R7', clause: oonClause(plan), text: `Qualified professionals are available in network (${qualifiedCount}); the plan may limit the choice to them` },
  ];
}

/** R9: the clocks, expedited also when the member faces an imminent and serious threat (H&S 1383.15). */
function deadlinesOf(plan: PlanProfile, input: SecondOpinionInput, outOfNetwork: boolean): { deadlines: Deadlines; findings: Finding[] } {
  const expedited = input.priority !== 'routine' || input.imminentThreat;
  const deadlines = computeDeadlines(plan, input.receivedAt, { expedited, imminentThreat: input.imminentThreat, outOfNetwork });
  const findings: Finding[] = [];
  if (input.imminentThreat) {
    findings.push({ rule: 'R9', clause: 'H&S 1383.15; 42 CFR 438.210(d)(2)', text: 'Imminent and serious threat to the member’s health: expedited, and the opinion within 72 hours' });
  }
  const sources = deadlines.considered.filter((c) => c.dueAt === deadlines.decisionDueAt).map((c) => c.source);
  findings.push({ rule: 'R9', clause: plan.timeframes.clause, text: `Decision due ${deadlines.decisionDueAt} (${sources.join('; ')}); member notified by ${deadlines.memberNotificationDueAt}` });
  return { deadlines, findings };
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
    findings.push({ rule: 'R4', clause: QUALIFIED_CLAUSE, text: `The requested professional may not qualify: ${requestedProblems.join('; ')}` });
  }
  if (outOfNetwork) findings.push(...outOfNetworkFindings(plan, outOfNetworkJustified, qualified.length));

  // BSP D.VI.a: the member (or a representative, PHC VI.A) designates a qualifying PCP: no designation, no exception to D.I.
  const memberPcpChoice = (requester.kind === 'member' || requester.kind === 'authorized-representative') && input.careQuestioned.kind === 'primary-care';
  const designated = requested !== undefined && requestedProblems.length === 0;
  const noAuthorization = plan.routing.inNetworkStraightThrough || (plan.routing.memberDesignatedPcpStraightThrough && memberPcpChoice && designated);
  const cause = outOfNetwork ? undefined : reviewCause(plan, input, { requesterAccepted: requester.accepted, requested, requestedProblems, noAuthorization });
  const straightThrough = !outOfNetwork && !cause;
  const professionalToArrange = cause?.rule === 'R3' && !requested && noAuthorization;
  findings.push(...routingFindings(plan, straightThrough, cause, professionalToArrange));
  findings.push({ rule: 'R12', clause: noCostClause(plan), text: 'No cost to the member' });

  const clocks = deadlinesOf(plan, input, outOfNetwork);
  findings.push(...clocks.findings);

  return {
    requesterAccepted: requester.accepted,
    reviewRoute: straightThrough ? 'straight-through' : 'um-review',
    authorizationRequired: outOfNetwork || !noAuthorization,
    outcome: straightThrough ? 'approved' : 'pended',
    professionalToArrange,
    requestedTier,
    requestedQualified: requested ? requestedProblems.length === 0 : undefined,
    qualifiedInNetworkProviders: qualified,
    outOfNetworkJustified,
    outOfNetwork,
    memberCost: 0,
    deadlines: clocks.deadlines,
    findings,
  };
}
