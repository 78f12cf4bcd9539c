import type {
  CoverageEligibilityRequest,
  CoverageEligibilityResponse,
  Extension,
  Reference,
  ServiceRequest,
  Task,
} from 'fhir/r4.js';
import { CODE_SYSTEMS, EXTENSIONS, IDENTIFIER_SYSTEMS, PROFILES } from '../fhir/systems.js';

/** What the decision engine concluded, in the terms the FHIR resources need. */
export interface CaseDecision {
  authorizationRequired: boolean;
  outcome: 'approved' | 'pended';
  /** R3: pended only for the plan to arrange a qualified in-network professional; no authorization is needed. */
  professionalToArrange?: boolean;
  outOfNetwork: boolean;
  /** R12: what the member pays, USD (the copay benefit's allowedMoney). */
  memberCost: number;
  /** One line per rule applied, e.g. "R3 (HPSJ III.A): in network, no authorization needed". */
  explanation: string[];
  qualifiedInNetworkProviders: { practitionerRoleId: string; display: string }[];
  decisionDueAt: string;
  providerNotificationDueAt: string;
  memberNotificationDueAt: string;
  opinionDueAt?: string;
  expedited: boolean;
  reviewRoute: 'straight-through' | 'um-review';
}

export interface CaseRefs {
  serviceRequest: Reference;
  patient: Reference;
  coverage: Reference;
  insurer: Reference;
  requester?: Reference;
  performer?: Reference;
  eligibilityRequest: Reference;
}

/** The second-opinion service code used on items and on the Task. */
export const SECOND_OPINION_CODE = { system: CODE_SYSTEMS.serviceRequestCategory, code: 'second-opinion', display: 'Second medical opinion' };

/** Da Vinci CRD 2.2 coverage-information extension (the same answer as the CoverageEligibilityResponse). */
export function coverageInformation(decision: CaseDecision, refs: CaseRefs, receivedAt: string, assertionId: string, preAuthId?: string): Extension {
  const sub = (url: string, value: Omit<Extension, 'url'>): Extension => ({ url, ...value });
  const paNeeded = preAuthId ? 'satisfied' : decision.authorizationRequired ? 'auth-needed' : 'no-auth';
  const parts: Extension[] = [
    sub('coverage', { valueReference: refs.coverage }),
    sub('covered', { valueCode: 'covered' }),
    sub('pa-needed', { valueCode: paNeeded }),
    sub('date', { valueDate: receivedAt.slice(0, 10) }),
    sub('coverage-assertion-id', { valueString: assertionId }),
  ];
  if (decision.outOfNetwork) parts.push(sub('reason', { valueCodeableConcept: { coding: [{ system: CODE_SYSTEMS.crdTemp, code: 'auth-out-network' }], text: 'Out-of-network professional' } }));
  if (preAuthId) parts.push(sub('satisfied-pa-id', { valueString: preAuthId }));
  if (decision.explanation.length) parts.push(sub('detail', { extension: [{ url: 'code', valueCodeableConcept: { text: 'rules' } }, { url: 'value', valueString: decision.explanation.join('; ') }] }));
  return { url: EXTENSIONS.crdCoverageInformation, extension: parts };
}

export function eligibilityRequest(refs: Omit<CaseRefs, 'eligibilityRequest'>, receivedAt: string): CoverageEligibilityRequest {
  return {
    resourceType: 'CoverageEligibilityRequest',
    status: 'active',
    purpose: ['auth-requirements'],
    patient: refs.patient,
    created: receivedAt,
    insurer: refs.insurer,
    provider: refs.requester?.reference?.startsWith('Patient/') || refs.requester?.reference?.startsWith('RelatedPerson/') ? undefined : refs.requester,
    insurance: [{ focal: true, coverage: refs.coverage }],
    item: [
      {
        category: { coding: [SECOND_OPINION_CODE] },
        productOrService: { coding: [SECOND_OPINION_CODE] },
        provider: refs.performer?.reference?.match(/^(Practitioner|PractitionerRole)\//) ? refs.performer : undefined,
        detail: [refs.serviceRequest],
      },
    ],
  };
}

export function eligibilityResponse(decision: CaseDecision, refs: CaseRefs, receivedAt: string, preAuthRef?: string): CoverageEligibilityResponse {
  const approved = decision.outcome === 'approved';
  return {
    resourceType: 'CoverageEligibilityResponse',
    meta: { profile: [PROFILES.coverageEligibilityResponse] },
    status: 'active',
    purpose: ['auth-requirements'],
    patient: refs.patient,
    created: receivedAt,
    request: refs.eligibilityRequest,
    outcome: approved ? 'complete' : 'queued',
    disposition: disposition(decision),
    insurer: refs.insurer,
    preAuthRef,
    insurance: [
      {
        coverage: refs.coverage,
        inforce: true,
        item: [
          {
            // ces-1: an item has a category or a product/service code, not both.
            productOrService: { coding: [SECOND_OPINION_CODE] },
            provider: refs.performer?.reference?.match(/^(Practitioner|PractitionerRole)\//) ? refs.performer : undefined,
            network: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/benefit-network', code: decision.outOfNetwork ? 'out' : 'in' }] },
            benefit: [
              // R12: what the member pays (nothing).
              { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/benefit-type', code: 'copay' }] }, allowedMoney: { value: decision.memberCost, currency: 'USD' } },
            ],
            authorizationRequired: decision.authorizationRequired,
            authorizationSupporting: decision.authorizationRequired ? [{ text: 'Clinical information supporting the request (R11)' }] : undefined,
          },
        ],
      },
    ],
  };
}

/** R3 (HPSJ III.A, PHC VI.A, ANT IV): an in-network opinion needs no authorization; naming no one, the plan arranges one (HPSJ II.A, PHC VI.C, ANT III). */
const ARRANGING = 'No authorization is needed. No professional was named: the plan arranges a qualified professional in its network';

/** What the answer means for the member and the requester, before the reasons. */
function dispositionHead(decision: CaseDecision): string {
  if (decision.outcome === 'approved') return decision.authorizationRequired ? 'Authorized.' : 'Approved: no authorization is needed.';
  if (decision.professionalToArrange) return `${ARRANGING}; the plan names the professional by ${decision.decisionDueAt}.`;
  // In network, nothing needs authorizing: what UM reviews is the finding below (the requester, the reason, the professional named).
  if (!decision.authorizationRequired) return `No authorization is needed in network; pended for utilization management review of what the findings below name; decision due ${decision.decisionDueAt}.`;
  return `Pended for utilization management review; decision due ${decision.decisionDueAt}.`;
}

function disposition(decision: CaseDecision): string {
  const head = dispositionHead(decision);
  const alternatives = decision.qualifiedInNetworkProviders.length
    ? ` Qualified in-network professionals: ${decision.qualifiedInNetworkProviders.map((p) => p.display).join('; ')}.`
    : '';
  return `${head} ${decision.explanation.join(' ')}${alternatives}`.trim();
}

export function caseTask(decision: CaseDecision, refs: CaseRefs, receivedAt: string, requestIdentifier: string): Task {
  const approved = decision.outcome === 'approved';
  return {
    resourceType: 'Task',
    meta: { profile: [PROFILES.task] },
    identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: requestIdentifier }],
    status: approved ? 'accepted' : 'requested',
    businessStatus: { coding: [{ system: CODE_SYSTEMS.businessStatus, code: approved ? 'approved' : 'um-review' }], text: decision.professionalToArrange ? ARRANGING : undefined },
    intent: 'order',
    priority: decision.expedited ? 'urgent' : 'routine',
    code: { coding: [SECOND_OPINION_CODE] },
    focus: refs.serviceRequest,
    for: refs.patient,
    authoredOn: receivedAt,
    lastModified: receivedAt,
    requester: refs.requester,
    owner: refs.insurer,
    restriction: { period: { start: receivedAt, end: decision.decisionDueAt } },
    input: [
      { type: { text: 'provider-notification-due' }, valueDateTime: decision.providerNotificationDueAt },
      { type: { text: 'member-notification-due' }, valueDateTime: decision.memberNotificationDueAt },
      ...(decision.opinionDueAt ? [{ type: { text: 'opinion-due' }, valueDateTime: decision.opinionDueAt }] : []),
    ],
  };
}

/** Marks the stored ServiceRequest as a second-opinion request of our profile. */
export function stampServiceRequest(sr: ServiceRequest, requestIdentifier: string, receivedAt: string, coverageInfo: Extension): ServiceRequest {
  const identifiers = sr.identifier ?? [];
  const hasOurs = identifiers.some((i) => i.system === IDENTIFIER_SYSTEMS.secondOpinionRequest);
  return {
    ...sr,
    meta: { ...sr.meta, profile: [...new Set([...(sr.meta?.profile ?? []), PROFILES.serviceRequest])] },
    identifier: hasOurs ? identifiers : [...identifiers, { system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: requestIdentifier }],
    status: 'active',
    authoredOn: sr.authoredOn ?? receivedAt,
    extension: [...(sr.extension ?? []).filter((e) => e.url !== EXTENSIONS.crdCoverageInformation), coverageInfo],
  };
}
