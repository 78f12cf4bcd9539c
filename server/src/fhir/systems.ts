/**
 * Canonical URLs, identifier systems and extension URLs shared by profiles/, the domain mapping,
 * the demo data and the server. One place, so nothing drifts.
 */
export const CANONICAL_BASE = 'https://second-opinion.example.org/fhir';

export const profileUrl = (name: string): string => `${CANONICAL_BASE}/StructureDefinition/${name}`;

export const PROFILES = {
  serviceRequest: profileUrl('second-opinion-servicerequest'),
  coverageEligibilityResponse: profileUrl('second-opinion-coverageeligibilityresponse'),
  task: profileUrl('second-opinion-task'),
  consultationReport: profileUrl('second-opinion-consultation-report'),
  decisionNotice: profileUrl('second-opinion-decision-notice'),
  /** R17: a member's grievance about a second opinion (PHC VI.E). */
  grievance: profileUrl('second-opinion-grievance'),
} as const;

export const CODE_SYSTEMS = {
  reason: `${CANONICAL_BASE}/CodeSystem/second-opinion-reason`,
  businessStatus: `${CANONICAL_BASE}/CodeSystem/second-opinion-business-status`,
  /** Roles of users of this server (treating provider, UM clinician, ...). */
  userRole: `${CANONICAL_BASE}/CodeSystem/user-role`,
  /** Requester kinds for R1 (member, authorized representative, PCP, treating specialist, other). */
  requesterKind: `${CANONICAL_BASE}/CodeSystem/requester-kind`,
  /** Qualification codes: board certification, Medi-Cal enrollment. */
  qualification: `${CANONICAL_BASE}/CodeSystem/provider-qualification`,
  /** Network tiers (ipa, plan-network, out-of-network). */
  networkTier: `${CANONICAL_BASE}/CodeSystem/network-tier`,
  nucc: 'http://nucc.org/provider-taxonomy',
  serviceRequestCategory: `${CANONICAL_BASE}/CodeSystem/second-opinion-category`,
  /** The figures of the committee report (R19), the groups of its MeasureReport. */
  committeeReport: `${CANONICAL_BASE}/CodeSystem/committee-report`,
  /** R17: what a grievance is about, where it stands, how it was resolved. */
  grievanceCategory: `${CANONICAL_BASE}/CodeSystem/grievance-category`,
  grievanceStatus: `${CANONICAL_BASE}/CodeSystem/grievance-status`,
  grievanceOutcome: `${CANONICAL_BASE}/CodeSystem/grievance-outcome`,
  crdTemp: 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp',
  crdCoverageInfo: 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/coverageInfo',
} as const;

/** R17: the code of a grievance Task, which only `Task/$file-grievance` writes. */
export const GRIEVANCE_TASK_CODE = { system: CODE_SYSTEMS.serviceRequestCategory, code: 'second-opinion-grievance', display: 'Grievance about a second opinion' };

export const VALUE_SETS = {
  reason: `${CANONICAL_BASE}/ValueSet/second-opinion-reason`,
  businessStatus: `${CANONICAL_BASE}/ValueSet/second-opinion-business-status`,
  grievanceCategory: `${CANONICAL_BASE}/ValueSet/grievance-category`,
  grievanceStatus: `${CANONICAL_BASE}/ValueSet/grievance-status`,
  userRole: `${CANONICAL_BASE}/ValueSet/user-role`,
} as const;

export const IDENTIFIER_SYSTEMS = {
  npi: 'http://hl7.org/fhir/sid/us-npi',
  /** Medi-Cal Client Index Number (CIN) of a member. */
  mediCalCin: 'urn:oid:2.16.840.1.113883.3.1241.1.1',
  /** Plan member id; qualified per plan by Coverage.payor, stored with this system. */
  planMemberId: `${CANONICAL_BASE}/sid/member-id`,
  /** On a copy delivered to a provider's server: which resource of ours it copies (`Type/id`), so that it is created once. */
  deliveredResource: `${CANONICAL_BASE}/sid/delivered-resource`,
  /** Identifier of a second-opinion request, assigned by the submitter or by us. */
  secondOpinionRequest: `${CANONICAL_BASE}/sid/second-opinion-request`,
  /** Prior authorization numbers issued by the plan. */
  preAuth: `${CANONICAL_BASE}/sid/prior-authorization`,
  /** Plan identifiers (HPSJ, PHC, ANT, BSP). */
  planId: `${CANONICAL_BASE}/sid/plan`,
  /** Medi-Cal provider enrollment number. */
  mediCalProvider: `${CANONICAL_BASE}/sid/medi-cal-provider`,
} as const;

export const EXTENSIONS = {
  /** Da Vinci CRD 2.2 coverage-information extension. */
  crdCoverageInformation: 'http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information',
  /** Da Vinci Plan-Net network reference on PractitionerRole/Organization. */
  planNetNetworkReference: 'http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/network-reference',
  /** Da Vinci Plan-Net qualification extension is not needed: core Practitioner.qualification is used. */
  /** Transportation needed (R13) on the ServiceRequest. */
  transportationNeeded: `${CANONICAL_BASE}/StructureDefinition/transportation-needed`,
  /** The professional whose care is questioned (initial professional). */
  careQuestioned: `${CANONICAL_BASE}/StructureDefinition/care-questioned`,
  /** Member faces an imminent and serious threat to health (H&S 1383.15). */
  imminentThreat: `${CANONICAL_BASE}/StructureDefinition/imminent-threat`,
  /** Requester kind for R1. */
  requesterKind: `${CANONICAL_BASE}/StructureDefinition/requester-kind`,
  /** Behavioral health request flag (R22). */
  behavioralHealth: `${CANONICAL_BASE}/StructureDefinition/behavioral-health`,
  /** Member's preferred language for notices. */
  preferredLanguage: `${CANONICAL_BASE}/StructureDefinition/preferred-language`,
} as const;

/** Topics of R4 topic-based subscriptions (Subscriptions R5 Backport IG): Subscription.criteria. */
export const SUBSCRIPTION_TOPICS = {
  /** Changes to the Task, ServiceRequest, CoverageEligibilityResponse, Communication and DocumentReference of a second-opinion case. */
  secondOpinionCase: `${CANONICAL_BASE}/SubscriptionTopic/second-opinion-case`,
} as const;

const BACKPORT_IG = 'http://hl7.org/fhir/uv/subscriptions-backport';
const BACKPORT_SD = `${BACKPORT_IG}/StructureDefinition`;
/** The R4 Subscriptions Backport IG's canonical URLs (extensions, profiles, its server statement and operation). */
export const BACKPORT = {
  implementationGuide: `${BACKPORT_IG}/ImplementationGuide/hl7.fhir.uv.subscriptions-backport`,
  serverCapabilities: `${BACKPORT_IG}/CapabilityStatement/backport-subscription-server-r4`,
  filterCriteria: `${BACKPORT_SD}/backport-filter-criteria`,
  payloadContent: `${BACKPORT_SD}/backport-payload-content`,
  heartbeatPeriod: `${BACKPORT_SD}/backport-heartbeat-period`,
  timeout: `${BACKPORT_SD}/backport-timeout`,
  maxCount: `${BACKPORT_SD}/backport-max-count`,
  channelType: `${BACKPORT_SD}/backport-channel-type`,
  subscriptionProfile: `${BACKPORT_SD}/backport-subscription`,
  statusProfile: `${BACKPORT_SD}/backport-subscription-status-r4`,
  notificationProfile: `${BACKPORT_SD}/backport-subscription-notification-r4`,
  statusOperation: `${BACKPORT_IG}/OperationDefinition/backport-subscription-status`,
  eventsOperation: `${BACKPORT_IG}/OperationDefinition/backport-subscription-events`,
  subscriptionError: 'http://terminology.hl7.org/CodeSystem/subscription-error',
} as const;
