/** The vocabulary of the second-opinion rules (R1-R22), free of FHIR, HTTP and SQL. */

/** R2: reason categories (HPSJ II.B.1-5, PHC VI.A.1-5, ANT II.A-E, BSP C.II.a-e) plus "other". */
export const REASON_CATEGORIES = ['surgery-necessity', 'serious-condition', 'unclear-diagnosis', 'not-improving', 'persistent-concerns', 'other'] as const;
export type ReasonCategory = (typeof REASON_CATEGORIES)[number];

/** R1: who asks. The policies name the member, an authorized representative, the PCP and a treating specialist. */
export const REQUESTER_KINDS = ['member', 'authorized-representative', 'pcp', 'treating-specialist', 'other'] as const;
export type RequesterKind = (typeof REQUESTER_KINDS)[number];

export type NetworkTier = 'member-group' | 'plan-network' | 'out-of-network';

export interface Position {
  latitude: number;
  longitude: number;
}

/** A professional who could give the opinion, as the plan's directory knows them. */
export interface Professional {
  practitionerId: string;
  practitionerRoleId: string;
  name: string;
  /** NUCC taxonomy codes. */
  specialties: string[];
  isPrimaryCare: boolean;
  /** IPA / medical group (physician organization). */
  organizationId?: string;
  /** Plan networks the role belongs to. */
  networkIds: string[];
  boardCertified: boolean;
  mediCalEnrolled: boolean;
  active: boolean;
  acceptingNewPatients: boolean;
  position?: Position;
}

export interface Member {
  patientId: string;
  /** The member's IPA / medical group, if assigned. */
  memberGroupId?: string;
  /** The plan network of the member's plan. */
  planNetworkId: string;
  pcpPractitionerId?: string;
  position?: Position;
  /** R4 (BSP A): professionals already involved in the member's treatment plan. */
  previouslyInvolvedPractitionerIds: string[];
}

/** R2: one reason for the request. */
export interface Reason {
  category: ReasonCategory;
  text?: string;
  /** No reason was stated: only a condition was referenced, whose words are the text (a UM clinician reviews it). */
  inferredFromCondition?: boolean;
}

export type Priority = 'routine' | 'urgent' | 'asap' | 'stat';

export interface SecondOpinionInput {
  receivedAt: string;
  member: Member;
  /** R1: who the requester is by the record (the member, the member's PCP, a CareTeam participant …). */
  requesterKind: RequesterKind;
  /** R1: what the request says of its requester (the `requester-kind` extension): honoured only as a downgrade. */
  declaredRequesterKind?: RequesterKind;
  reasons: Reason[];
  priority: Priority;
  /** H&S 1383.15: the member faces an imminent and serious threat to health. */
  imminentThreat: boolean;
  /** Whose care is questioned: the PCP's, or a specialist's (and which specialty). */
  careQuestioned: { kind: 'primary-care' | 'specialist'; specialty?: string; practitionerId?: string };
  /** The professional the requester chose, if any. */
  requestedProfessional?: Professional;
  /** R22: a behavioral health request (same rules; recorded for reporting). */
  behavioralHealth: boolean;
  /** Candidates from the plan directory (the caller may pre-filter by specialty). */
  directory: Professional[];
}

/** One step of the reasoning, citing the rule and the clause it comes from. */
export interface Finding {
  rule: string;
  clause: string;
  text: string;
}

export interface RankedProfessional {
  professional: Professional;
  tier: NetworkTier;
  distanceKm?: number;
}

export interface Deadlines {
  receivedAt: string;
  expedited: boolean;
  /** The earliest deadline that applies (R9). */
  decisionDueAt: string;
  /** The earliest clock that bounds the notices too: 42 CFR 438.210(d) (decision and notice), PHC VI.D.2. */
  noticeDueAt: string;
  /** H&S 1367.01(h)(3): the provider is told within 24 hours of the decision, and by noticeDueAt. */
  providerNotificationDueAt: string;
  /** H&S 1367.01(h)(3): the member is told in writing within 2 business days of the decision, and by noticeDueAt. */
  memberNotificationDueAt: string;
  /** H&S 1383.15: the opinion itself within 72 hours when the member faces an imminent, serious threat. */
  opinionDueAt?: string;
  /** Each deadline considered, with its source; the earliest became decisionDueAt. */
  considered: { source: string; dueAt: string }[];
}

export interface SecondOpinionDecision {
  requesterAccepted: boolean;
  reviewRoute: 'straight-through' | 'um-review';
  authorizationRequired: boolean;
  outcome: 'approved' | 'pended';
  /**
   * R3: in network, no authorization is needed, but the request named no professional: the plan arranges a
   * qualified one in its network (a UM clinician names them), so the case waits without an authorization review.
   */
  professionalToArrange: boolean;
  /** Tier of the requested professional, if one was named. */
  requestedTier?: NetworkTier;
  requestedQualified?: boolean;
  /** R7: up to five qualified in-network professionals, member's group first, nearest first. */
  qualifiedInNetworkProviders: RankedProfessional[];
  /** R7: no qualified in-network professional exists, so out of network is justified. */
  outOfNetworkJustified: boolean;
  outOfNetwork: boolean;
  /** R12: what the member pays (USD): nothing, in or out of network. */
  memberCost: number;
  deadlines: Deadlines;
  findings: Finding[];
}

/** A request the rules cannot accept as submitted (the HTTP layer answers 422). */
export class DomainRuleError extends Error {
  constructor(
    readonly rule: string,
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'DomainRuleError';
  }
}
