import type { Member, NetworkTier, Position, Professional, RankedProfessional, SecondOpinionInput } from './model.js';
import type { PlanProfile } from './plans.js';

/** NUCC codes of primary care (family medicine, internal medicine, pediatrics, general practice). */
export const PRIMARY_CARE_SPECIALTIES = ['207Q00000X', '207R00000X', '208000000X', '208D00000X'];
/** NUCC codes of behavioral health (R22): psychiatry, psychology, clinical social work, MFT. */
export const BEHAVIORAL_HEALTH_SPECIALTIES = ['2084P0800X', '103T00000X', '1041C0700X', '106H00000X', '101YM0800X'];

/** NUCC's Allopathic & Osteopathic Physicians grouping (every code in it starts with 20). */
export const isPhysicianSpecialty = (code: string): boolean => code.startsWith('20');

/**
 * BSP D.VI.b asks for "a Board-Certified Physician of the same specialty". A specialty no physician practises
 * (psychology, clinical social work, MFT, counseling) has no board-certified physician: asking for one would
 * leave a behavioral health request no qualified professional, a limit medical requests do not meet (R22,
 * 42 CFR 438.910(d)). Its professionals qualify by the same specialty and R4's licensure and scope.
 */
const needsBoardCertification = (plan: PlanProfile, specialty: string | undefined): boolean =>
  plan.network.specialistBoardCertification && (specialty === undefined || isPhysicianSpecialty(specialty));

/** What a request says of the specialty wanted, each as NUCC codes (empty when it says nothing). */
export interface SpecialtySources {
  /** The specialty the request names (ServiceRequest.performerType). */
  named: string[];
  /** The specialties of the professional whose care is questioned. */
  ofCareQuestioned: string[];
  /** The specialties of the professional the requester chose. */
  ofRequestedProfessional: string[];
}

/**
 * The specialty requested, the one way for every rule that needs it: the opinion on a specialist's care
 * (R6, ANT III "a provider of the same specialty") and the consultative reviewer (R11, BSP D.VI "a
 * physician in the same specialty as the one being requested"). The specialty the request names; else
 * that of the care questioned, which the opinion must share (R6); else that of the professional chosen.
 */
export function requestedSpecialties(sources: SpecialtySources): string[] {
  return [sources.named, sources.ofCareQuestioned, sources.ofRequestedProfessional].find((codes) => codes.length > 0) ?? [];
}

/**
 * R11 (BSP D.VI): a consultative reviewer is "a physician in the same specialty as the one being
 * requested"; for a primary care opinion any primary care specialty is the same one.
 */
export function practisesRequestedSpecialty(requested: string[], reviewer: string[]): boolean {
  if (requested.some((s) => PRIMARY_CARE_SPECIALTIES.includes(s)) && reviewer.some((s) => PRIMARY_CARE_SPECIALTIES.includes(s))) return true;
  return requested.some((s) => reviewer.includes(s));
}

/** R6 (BSP D.VI.b): member's IPA/medical group, then the plan network, then out of network. */
export function tierOf(plan: PlanProfile, member: Member, professional: Professional): NetworkTier {
  if (!professional.networkIds.includes(member.planNetworkId)) return 'out-of-network';
  if (plan.network.memberGroupFirst && member.memberGroupId && professional.organizationId === member.memberGroupId) return 'member-group';
  return 'plan-network';
}

export const isInNetwork = (tier: NetworkTier): boolean => tier !== 'out-of-network';

/** Why a professional does not qualify for this request (empty when qualified). R4-R7. */
export function disqualifications(plan: PlanProfile, input: SecondOpinionInput, professional: Professional): string[] {
  const reasons: string[] = [];
  const { careQuestioned, member } = input;
  if (!professional.active) reasons.push('not active (R4)');
  if (!professional.acceptingNewPatients) reasons.push('not accepting patients');
  if (member.previouslyInvolvedPractitionerIds.includes(professional.practitionerId) || careQuestioned.practitionerId === professional.practitionerId) {
    reasons.push('previously involved in the member’s treatment plan (R4, BSP A)');
  }
  if (careQuestioned.kind === 'primary-care') {
    if (!professional.isPrimaryCare) reasons.push('not a primary care professional (R5)');
    if (plan.network.pcpWithinMemberGroup && member.memberGroupId && professional.organizationId !== member.memberGroupId) {
      reasons.push('not within the member’s physician organization (R5, BSP D.VI.a)');
    }
  } else {
    if (!careQuestioned.specialty || !professional.specialties.includes(careQuestioned.specialty)) reasons.push('not the same specialty (R6)');
    if (needsBoardCertification(plan, careQuestioned.specialty) && !professional.boardCertified) reasons.push('not board certified (R6, BSP D.VI.b)');
  }
  const tier = tierOf(plan, member, professional);
  if (!isInNetwork(tier) && plan.network.outOfNetworkMediCalEnrollment && !professional.mediCalEnrolled) {
    reasons.push('out of network and not certified by Medi-Cal (R7, PHC VI.A)');
  }
  return reasons;
}

/** R7: qualified in-network professionals, member's group first where the plan says so, then nearest. */
export function qualifiedInNetworkProviders(plan: PlanProfile, input: SecondOpinionInput, limit = 5): RankedProfessional[] {
  const ranked = input.directory
    .filter((p) => disqualifications(plan, input, p).length === 0)
    .map((professional) => ({ professional, tier: tierOf(plan, input.member, professional), distanceKm: distance(input.member.position, professional.position) }))
    .filter((r) => isInNetwork(r.tier));
  const tierRank = (t: NetworkTier) => (t === 'member-group' ? 0 : 1);
  ranked.sort(
    (a, b) =>
      tierRank(a.tier) - tierRank(b.tier) ||
      (a.distanceKm ?? Infinity) - (b.distanceKm ?? Infinity) ||
      a.professional.name.localeCompare(b.professional.name),
  );
  const unique = ranked.filter((r, i) => ranked.findIndex((x) => x.professional.practitionerId === r.professional.practitionerId) === i);
  return unique.slice(0, limit);
}

/** Great-circle distance in km (haversine); undefined when a position is unknown. */
export function distance(a?: Position, b?: Position): number | undefined {
  if (!a || !b) return undefined;
  const rad = (d: number) => (d * Math.PI) / 180;
  const dLat = rad(b.latitude - a.latitude);
  const dLon = rad(b.longitude - a.longitude);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.latitude)) * Math.cos(rad(b.latitude)) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.sqrt(h));
}
