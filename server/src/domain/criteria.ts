import { esc } from './html.js';
import type { PlanProfile } from './plans.js';

/**
 * The criteria the engine applies for a plan, generated from the plan profile itself so the page
 * cannot drift from the code (R21, H&S 1363.5).
 */
export function criteriaLines(plan: PlanProfile): string[] {
  const t = plan.timeframes;
  return [
    `Who may ask (R1): the member, an authorized representative, the PCP or a treating specialist; other requesters go to UM review.`,
    `Reasons (R2): questions about surgery or treatment, a serious condition, an unclear diagnosis, a treatment plan that is not working, persistent concerns, or any other reason described in words.`,
    plan.routing.inNetworkStraightThrough
      ? `In network (R3, ${plan.routing.clause}): no authorization is needed; the request is approved on receipt.`
      : `Every request is reviewed by a UM clinician (R3, ${plan.routing.clause}), except a member choosing an in-network PCP, which needs no authorization.`,
    `Qualified professional (R4): licensed, acting within scope, with expertise in the condition, active, accepting patients, not previously involved in the member's treatment plan.`,
    plan.network.pcpWithinMemberGroup ? 'Opinion on PCP care (R5): a qualified PCP in the same physician organization.' : 'Opinion on PCP care (R5): a qualified PCP of the member’s choice in the plan network.',
    `Opinion on specialist care (R6): the same specialty${plan.network.specialistBoardCertification ? ', a board-certified physician where physicians practise it (a specialty no physician practises, such as psychology, clinical social work or family therapy (R22), podiatry or optometry, by the same specialty and licence)' : ''}${plan.network.memberGroupFirst ? '; searched in the member’s IPA/medical group, then the plan network, then out of network' : ' in the plan network'}.`,
    `Out of network (R7, R8): only when no qualified professional is available in network; prior authorization required${plan.network.outOfNetworkMediCalEnrollment ? '; the professional must be certified by Medi-Cal' : ''}.`,
    `Deadlines (R9, ${t.clause}): standard decisions within ${t.standardCalendarDays} calendar days, expedited within ${t.expeditedHours} hours${t.outOfNetworkRoutineBusinessDays ? `; out-of-network requests within ${t.outOfNetworkRoutineBusinessDays} business days (urgent: ${t.outOfNetworkUrgentHours} hours)` : ''}, whichever is earliest; extensions up to ${t.maxExtensionDays} days with notice; the provider is told within ${t.providerNotificationHours} hours of the decision and the member in writing within ${t.memberNotificationBusinessDays} business days.`,
    `Who may deny or modify (R10): ${plan.adverseDecisionBy === 'medical-director-or-designee' ? 'the Medical Director or a physician designee' : 'a physician reviewer'}.`,
    'Cost (R12): none to the member.',
    `Urgent means: ${plan.urgentDefinition}`,
  ];
}

export function criteriaHtml(plan: PlanProfile): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Second-opinion criteria: ${esc(plan.name)}</title></head><body><main>
<h1>How ${esc(plan.name)} decides second-opinion requests</h1><p>Policy ${esc(plan.policy.number)}: ${esc(plan.policy.title)}</p>
<ol>${criteriaLines(plan).map((l) => `<li>${esc(l)}</li>`).join('')}</ol>
<p>Questions: ${esc(plan.contacts.memberServicesPhone)} (TTY ${esc(plan.contacts.tty)}).</p></main></body></html>`;
}
