import type { CareTeam, CodeableConcept, Coverage, Organization, Patient, PractitionerRole, Reference, Resource, ServiceRequest } from 'fhir/r4.js';
import { DomainRuleError, REASON_CATEGORIES, REQUESTER_KINDS, type Member, type Priority, type Professional, type Reason, type ReasonCategory, type RequesterKind, type SecondOpinionInput } from '../domain/model.js';
import { BEHAVIORAL_HEALTH_SPECIALTIES, disqualifications, PRIMARY_CARE_SPECIALTIES, requestedSpecialties } from '../domain/network.js';
import { planByPayorIdentifier, type PlanProfile } from '../domain/plans.js';
import { decideSecondOpinion } from '../domain/rules.js';
import { unprocessable } from '../fhir/outcomes.js';
import { parseLiteral } from '../fhir/references.js';
import { CODE_SYSTEMS, EXTENSIONS, IDENTIFIER_SYSTEMS, PROFILES } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';
import type { CaseDecision } from './caseResources.js';
import { networksOf, professionalsFrom, rolesOf, rolesWithSpecialty, specialtiesOfReference } from './directory.js';
import type { CaseFacts, DecideCase } from './submit.js';

/** The plan of a Coverage: its payor Organization's plan identifier names the plan profile. */
export async function planOf(store: FhirStore, coverage: Coverage): Promise<{ plan: PlanProfile; payor: Organization }> {
  for (const ref of coverage.payor) {
    const literal = parseLiteral(ref.reference);
    if (literal?.[0] !== 'Organization') continue;
    const payor = (await store.find('Organization', literal[1])) as Organization | undefined;
    const value = payor?.identifier?.find((i) => i.system === IDENTIFIER_SYSTEMS.planId)?.value;
    const plan = value ? planByPayorIdentifier(value) : undefined;
    if (plan && payor) return { plan, payor };
  }
  throw unprocessable('The Coverage is not with a Medi-Cal plan this server serves (Coverage.payor)', ['Coverage.payor']);
}

/** The decision step of `$submit`: plan rules (domain/) over the stored facts. */
export const decideWithPlanRules: DecideCase = async (store, facts) => {
  const { plan, payor } = await planOf(store, facts.coverage);
  const input = await domainInput(store, facts, plan, payor);
  try {
    const d = decideSecondOpinion(plan, input);
    const decision: CaseDecision = {
      authorizationRequired: d.authorizationRequired,
      outcome: d.outcome,
      professionalToArrange: d.professionalToArrange,
      outOfNetwork: d.outOfNetwork,
      memberCost: d.memberCost,
      explanation: d.findings.map((f) => `${f.rule} (${f.clause}): ${f.text}.`),
      qualifiedInNetworkProviders: d.qualifiedInNetworkProviders.map((q) => ({
        practitionerRoleId: q.professional.practitionerRoleId,
        display: `${q.professional.name} (${q.tier === 'member-group' ? 'your medical group' : 'plan network'}${q.distanceKm !== undefined ? `, ${q.distanceKm.toFixed(1)} km` : ''})`,
      })),
      decisionDueAt: d.deadlines.decisionDueAt,
      providerNotificationDueAt: d.deadlines.providerNotificationDueAt,
      memberNotificationDueAt: d.deadlines.memberNotificationDueAt,
      opinionDueAt: d.deadlines.opinionDueAt,
      expedited: d.deadlines.expedited,
      reviewRoute: d.reviewRoute,
    };
    if (await isAdditionalOpinion(store, facts.serviceRequest)) {
      // R15 (HPSJ III.G): further opinions are authorized on the plan's own determination: UM decides.
      decision.outcome = 'pended';
      decision.reviewRoute = 'um-review';
      decision.authorizationRequired = true;
      decision.professionalToArrange = false;
      decision.explanation.push('R15 (HPSJ III.G): An additional opinion on the same request is authorized on the plan’s own determination.');
    }
    return { decision, insurer: { reference: `Organization/${payor.id}`, display: plan.name } };
  } catch (err) {
    if (err instanceof DomainRuleError) throw unprocessable(err.message, [err.field]);
    throw err;
  }
};

async function domainInput(store: FhirStore, facts: CaseFacts, plan: PlanProfile, payor: Organization): Promise<SecondOpinionInput> {
  const sr = facts.serviceRequest;
  const member = await memberOf(store, facts.patient, facts.coverage, payor);
  const specialty = (await requestedSpecialtiesOf(store, sr))[0];
  const careQuestioned = await careQuestionedOf(store, sr, member, specialty);
  const requested = await requestedProfessional(store, sr);
  const wanted = careQuestioned.kind === 'primary-care' ? PRIMARY_CARE_SPECIALTIES : [careQuestioned.specialty ?? ''];
  const directory = await professionalsFrom(store, await rolesWithSpecialty(store, wanted.filter(Boolean)));
  return {
    receivedAt: facts.receivedAt,
    member,
    requesterKind: await requesterKindOf(store, sr, facts.patient, member),
    declaredRequesterKind: declaredRequesterKind(sr),
    reasons: await reasonsOf(store, sr),
    priority: (sr.priority ?? 'routine') as Priority,
    imminentThreat: sr.extension?.some((e) => e.url === EXTENSIONS.imminentThreat && e.valueBoolean) ?? false,
    careQuestioned,
    requestedProfessional: requested,
    behavioralHealth:
      (sr.extension?.some((e) => e.url === EXTENSIONS.behavioralHealth && e.valueBoolean) ?? false) || (specialty !== undefined && BEHAVIORAL_HEALTH_SPECIALTIES.includes(specialty)),
    directory,
  };
}

async function memberOf(store: FhirStore, patient: Patient, coverage: Coverage, payor: Organization): Promise<Member> {
  const pcpRef = patient.generalPractitioner?.[0];
  const pcp = await practitionerIdOf(store, pcpRef);
  const groupFromCoverage = coverage.class?.find((c) => c.type.coding?.some((x) => x.code === 'group'))?.value;
  const pcpRole = parseLiteral(pcpRef?.reference)?.[0] === 'PractitionerRole' ? ((await store.find('PractitionerRole', parseLiteral(pcpRef?.reference)![1])) as PractitionerRole | undefined) : undefined;
  const careTeams = await store.search({
    resourceType: 'CareTeam',
    clauses: [{ kind: 'reference', param: 'patient', values: [`patient|Patient/${patient.id}`] }],
    sort: [],
    count: 50,
    offset: 0,
    total: false,
  });
  const involved = new Set<string>(pcp ? [pcp] : []);
  for (const team of careTeams.resources as CareTeam[]) {
    for (const p of team.participant ?? []) {
      const id = await practitionerIdOf(store, p.member);
      if (id) involved.add(id);
    }
  }
  return {
    patientId: patient.id!,
    memberGroupId: groupFromCoverage ?? parseLiteral(pcpRole?.organization?.reference)?.[1],
    planNetworkId: await planNetworkOf(store, payor),
    pcpPractitionerId: pcp,
    previouslyInvolvedPractitionerIds: [...involved],
  };
}

/** Plan-Net: the plan's network is an Organization of type `ntwk` that is part of the plan. */
async function planNetworkOf(store: FhirStore, payor: Organization): Promise<string> {
  const { resources } = await store.search({
    resourceType: 'Organization',
    clauses: [
      { kind: 'reference', param: 'partof', values: [`partof|Organization/${payor.id}`] },
      { kind: 'token', param: 'type', values: ['type|*|ntwk'], not: false },
    ],
    sort: [],
    count: 1,
    offset: 0,
    total: false,
  });
  return resources[0]?.id ?? payor.id!;
}

async function practitionerIdOf(store: FhirStore, ref: Reference | undefined): Promise<string | undefined> {
  const literal = parseLiteral(ref?.reference);
  if (!literal) return undefined;
  if (literal[0] === 'Practitioner') return literal[1];
  if (literal[0] !== 'PractitionerRole') return undefined;
  const role = (await store.find('PractitionerRole', literal[1])) as PractitionerRole | undefined;
  return parseLiteral(role?.practitioner?.reference)?.[1];
}

/** R1: what the request declares of its requester; the rules honour it only as a downgrade (domain/rules.ts `requesterKindOf`). */
function declaredRequesterKind(sr: ServiceRequest): RequesterKind | undefined {
  const declared = sr.extension?.find((e) => e.url === EXTENSIONS.requesterKind)?.valueCode;
  return declared && (REQUESTER_KINDS as readonly string[]).includes(declared) ? (declared as RequesterKind) : undefined;
}

/** R1: who the requester is by the record: the member, their representative, their PCP or a CareTeam participant, in the plan's network. */
async function requesterKindOf(store: FhirStore, sr: ServiceRequest, patient: Patient, member: Member): Promise<RequesterKind> {
  const literal = parseLiteral(sr.requester?.reference);
  if (!literal) return 'other';
  if (literal[0] === 'Patient') return literal[1] === patient.id ? 'member' : 'other';
  if (literal[0] === 'RelatedPerson') {
    const related = (await store.find('RelatedPerson', literal[1])) as { patient?: Reference } | undefined;
    return related?.patient?.reference === `Patient/${patient.id}` ? 'authorized-representative' : 'other';
  }
  const practitioner = await practitionerIdOf(store, sr.requester);
  if (!practitioner || !(await participates(store, sr.requester!, practitioner, member.planNetworkId))) return 'other';
  if (practitioner === member.pcpPractitionerId) return 'pcp';
  if (member.previouslyInvolvedPractitionerIds.includes(practitioner)) return 'treating-specialist';
  return 'other';
}

/** R1 (HPSJ II.A, ANT Policy, BSP C.II): a *participating* professional: the requesting role, or any role of the practitioner, is in the plan's network. */
async function participates(store: FhirStore, requester: Reference, practitionerId: string, planNetworkId: string): Promise<boolean> {
  const literal = parseLiteral(requester.reference);
  const roles = literal?.[0] === 'PractitionerRole'
    ? [(await store.find('PractitionerRole', literal[1])) as PractitionerRole | undefined].filter((r): r is PractitionerRole => Boolean(r))
    : await rolesOf(store, practitionerId);
  return roles.some((role) => networksOf(role).includes(planNetworkId));
}

/**
 * R2: the stated reasons; "include, and are not limited to": any other code is "other", with its words. A request
 * giving only `reasonReference` states no reason: the referenced condition's words are recorded as "other" for UM review.
 */
async function reasonsOf(store: FhirStore, sr: ServiceRequest): Promise<Reason[]> {
  if (sr.reasonCode?.length) {
    return sr.reasonCode.map((concept) => {
      const code = concept.coding?.find((c) => c.system === CODE_SYSTEMS.reason)?.code;
      if (code && (REASON_CATEGORIES as readonly string[]).includes(code)) return { category: code as ReasonCategory, text: concept.text };
      return { category: 'other' as const, text: concept.text ?? concept.coding?.[0]?.display };
    });
  }
  return Promise.all((sr.reasonReference ?? []).map(async (ref) => ({ category: 'other' as const, text: await referencedWords(store, ref), inferredFromCondition: true })));
}

/** The words of a referenced Condition (or Observation, DiagnosticReport): its code's text or display, else the reference's. */
async function referencedWords(store: FhirStore, ref: Reference): Promise<string> {
  const literal = parseLiteral(ref.reference);
  const resource = literal ? ((await store.find(literal[0], literal[1])) as { code?: CodeableConcept } | undefined) : undefined;
  const code = resource?.code;
  return code?.text ?? code?.coding?.find((c) => c.display)?.display ?? ref.display ?? ref.reference ?? 'a referenced condition';
}

const careQuestionedRef = (sr: ServiceRequest): Reference | undefined => sr.extension?.find((e) => e.url === EXTENSIONS.careQuestioned)?.valueReference;

/** The specialty requested (domain/network.ts `requestedSpecialties`), read from the request and the directory. */
export async function requestedSpecialtiesOf(store: FhirStore, sr: ServiceRequest): Promise<string[]> {
  return requestedSpecialties({
    named: (sr.performerType?.coding ?? []).filter((c) => c.system === CODE_SYSTEMS.nucc && c.code).map((c) => c.code!),
    ofCareQuestioned: await specialtiesOfReference(store, careQuestionedRef(sr)),
    ofRequestedProfessional: await specialtiesOfReference(store, sr.performer?.[0]),
  });
}

/** R5/R6: whose care is questioned: the member's PCP's, or primary care by the specialty requested; else a specialist's, of that specialty. */
async function careQuestionedOf(store: FhirStore, sr: ServiceRequest, member: Member, specialty: string | undefined): Promise<SecondOpinionInput['careQuestioned']> {
  const practitionerId = await practitionerIdOf(store, careQuestionedRef(sr));
  const primary = (practitionerId !== undefined && practitionerId === member.pcpPractitionerId) || (specialty !== undefined && PRIMARY_CARE_SPECIALTIES.includes(specialty));
  return primary ? { kind: 'primary-care', practitionerId } : { kind: 'specialist', specialty, practitionerId };
}

async function requestedProfessional(store: FhirStore, sr: ServiceRequest): Promise<SecondOpinionInput['requestedProfessional']> {
  const ref = sr.performer?.[0];
  if (!parseLiteral(ref?.reference)) return undefined;
  const professional = await professionalAt(store, ref!);
  if (!professional) throw unprocessable(`The requested professional ${ref!.reference} is not in the plan directory`, ['ServiceRequest.performer']);
  return professional;
}

/** The directory's professional a PractitionerRole (or a Practitioner, by its first role) names. */
async function professionalAt(store: FhirStore, ref: Reference): Promise<Professional | undefined> {
  const literal = parseLiteral(ref.reference);
  let role: Resource | undefined;
  if (literal?.[0] === 'PractitionerRole') role = await store.find('PractitionerRole', literal[1]);
  else if (literal?.[0] === 'Practitioner') role = (await rolesOf(store, literal[1]))[0];
  return role ? (await professionalsFrom(store, [role as PractitionerRole]))[0] : undefined;
}

/**
 * R4-R7: why the professional a UM decision authorizes does not qualify for this request, by the same
 * rules as at intake (empty when they do).
 */
export async function authorizationProblems(store: FhirStore, facts: CaseFacts, plan: PlanProfile, payor: Organization, role: Reference): Promise<string[]> {
  const professional = await professionalAt(store, role);
  if (!professional) return ['not in the plan directory'];
  return disqualifications(plan, await domainInput(store, facts, plan, payor), professional);
}

/** A request based on an earlier second-opinion request is an additional opinion (R15). */
async function isAdditionalOpinion(store: FhirStore, sr: ServiceRequest): Promise<boolean> {
  for (const ref of sr.basedOn ?? []) {
    const literal = parseLiteral(ref.reference);
    if (literal?.[0] !== 'ServiceRequest') continue;
    const earlier = await store.find('ServiceRequest', literal[1]);
    if (earlier?.meta?.profile?.includes(PROFILES.serviceRequest)) return true;
  }
  return false;
}
