import { z } from 'zod';

/**
 * The four plans as data. Each difference between the policies is a field here, not a code path:
 * review routing, tiers, qualification demands, timeframes, holidays, who may deny, notice texts.
 */
export const PlanProfileSchema = z.object({
  id: z.enum(['hpsj', 'phc', 'ant', 'bsp']),
  name: z.string(),
  policy: z.object({ number: z.string(), title: z.string() }),
  /** Value of the plan Organization's identifier (IDENTIFIER_SYSTEMS.planId). */
  payorIdentifier: z.string(),
  timeZone: z.string(),
  holidays: z.object({
    country: z.string(),
    state: z.string().optional(),
    /** Extra plan holidays, YYYY-MM-DD. */
    extraDates: z.array(z.string().regex(/^\d{4}-\d{2}-\d{2}$/)),
    /**
     * Whether the plan closes on the Friday before a holiday that falls on a Saturday, as the calendar's substitute day
     * (as federal offices do). California's state offices do not (Gov. Code 6701, 19853(b): a Sunday holiday moves to the
     * Monday, and of the Saturday ones only November 11th to the Friday before); a plan that keeps their calendar sets this false.
     */
    fridaySubstitutes: z.boolean(),
  }),
  routing: z.object({
    /** R3: in-network requests need no authorization and are approved at once. */
    inNetworkStraightThrough: z.boolean(),
    /** BSP D.VI.a: a member designating an in-network PCP needs no authorization even where every other request goes to UM. */
    memberDesignatedPcpStraightThrough: z.boolean(),
    clause: z.string(),
  }),
  network: z.object({
    /** BSP D.VI.b: the member's IPA/medical group is searched first. */
    memberGroupFirst: z.boolean(),
    /** BSP D.VI.a: a PCP opinion comes from the same physician organization. */
    pcpWithinMemberGroup: z.boolean(),
    /** BSP D.VI.b: a board-certified physician of the same specialty. */
    specialistBoardCertification: z.boolean(),
    /** PHC VI.A: an out-of-network professional must be certified by Medi-Cal. */
    outOfNetworkMediCalEnrollment: z.boolean(),
  }),
  timeframes: z.object({
    /** PHC VI.D.1: urgent out-of-network requests decided within 72 hours of receipt. */
    outOfNetworkUrgentHours: z.number().int().positive().optional(),
    /** PHC VI.D.2: non-urgent out-of-network requests: member notified within 5 business days. */
    outOfNetworkRoutineBusinessDays: z.number().int().positive().optional(),
    /** 42 CFR 438.210(d)(1) as amended by CMS-0057-F (2026): standard decisions within 7 calendar days. */
    standardCalendarDays: z.number().int().positive(),
    /** 42 CFR 438.210(d)(2): expedited decisions within 72 hours. */
    expeditedHours: z.number().int().positive(),
    /** 42 CFR 438.210(d)(1)(ii): extension of up to 14 more days with notice. */
    maxExtensionDays: z.number().int().positive(),
    /** H&S 1367.01(h)(3): decision told to the provider within 24 hours. */
    providerNotificationHours: z.number().int().positive(),
    /** H&S 1367.01(h)(3): decision told to the member in writing within 2 business days. */
    memberNotificationBusinessDays: z.number().int().positive(),
    /** H&S 1383.15: opinion within 72 hours when the member faces an imminent and serious threat. */
    imminentThreatOpinionHours: z.number().int().positive(),
    /** Where the plan's own timeframes come from (ANT IV, BSP D.II defer to UM policies). */
    clause: z.string(),
  }),
  /** R10: who may deny or modify for medical necessity (H&S 1367.01(e); BSP C.I, D.VI-VII). */
  adverseDecisionBy: z.enum(['physician', 'licensed-competent-professional', 'medical-director-or-designee']),
  urgentDefinition: z.string(),
  contacts: z.object({ memberServicesPhone: z.string(), tty: z.string(), grievanceInstructions: z.string() }),
  /** Threshold languages for notices (English and Spanish at least). */
  languages: z.array(z.string()).min(2),
  /**
   * R18 (BSP D.IX): the IPAs/medical groups the plan delegates UM decisions to. A backend (system)
   * client decides a case only when it acts for the member's own group (Coverage.class `group`; the
   * client's registered `organization`) and the case's plan lists that group here; plans whose policy
   * names no delegation list none, so no system client decides their cases.
   */
  delegatedUm: z.array(
    z.object({
      /** Organization id of the IPA/medical group (the value of the member's Coverage.class `group`). */
      organization: z.string(),
      clause: z.string(),
    }),
  ),
});

export type PlanProfile = z.infer<typeof PlanProfileSchema>;
export type PlanId = PlanProfile['id'];

const FEDERAL_TIMEFRAMES = {
  standardCalendarDays: 7,
  expeditedHours: 72,
  maxExtensionDays: 14,
  providerNotificationHours: 24,
  memberNotificationBusinessDays: 2,
  imminentThreatOpinionHours: 72,
};

const CALIFORNIA_HOLIDAYS = { country: 'US', state: 'CA', extraDates: [] as string[], fridaySubstitutes: true };

const URGENT_DEFAULT =
  'Urgent: waiting the standard time for a decision could seriously jeopardize the member’s life, health or ability to regain maximum function (42 CFR 438.210(d)(2)).';

const PLAN_DATA: PlanProfile[] = [
  {
    id: 'hpsj',
    name: 'Health Plan of San Joaquin / Mountain Valley Health Plan',
    policy: { number: 'UM16', title: 'Second Medical Opinion' },
    payorIdentifier: 'hpsj',
    timeZone: 'America/Los_Angeles',
    holidays: CALIFORNIA_HOLIDAYS,
    routing: { inNetworkStraightThrough: true, memberDesignatedPcpStraightThrough: true, clause: 'HPSJ III.A' },
    network: { memberGroupFirst: false, pcpWithinMemberGroup: false, specialistBoardCertification: false, outOfNetworkMediCalEnrollment: false },
    timeframes: { ...FEDERAL_TIMEFRAMES, clause: 'HPSJ III.B-C (UM 01 Authorization and Referral Review)' },
    adverseDecisionBy: 'physician',
    urgentDefinition: URGENT_DEFAULT,
    contacts: {
      memberServicesPhone: '1-888-936-7526',
      tty: '711',
      grievanceInstructions: 'Call Member Services or write to the Grievance and Appeals Department of Health Plan of San Joaquin.',
    },
    languages: ['en', 'es'],
    delegatedUm: [],
  },
  {
    id: 'phc',
    name: 'Partnership HealthPlan of California',
    policy: { number: 'MPUP3078', title: 'Second Medical Opinions' },
    payorIdentifier: 'phc',
    timeZone: 'America/Los_Angeles',
    holidays: CALIFORNIA_HOLIDAYS,
    routing: { inNetworkStraightThrough: true, memberDesignatedPcpStraightThrough: true, clause: 'PHC VI.A' },
    network: { memberGroupFirst: false, pcpWithinMemberGroup: false, specialistBoardCertification: false, outOfNetworkMediCalEnrollment: true },
    timeframes: { ...FEDERAL_TIMEFRAMES, outOfNetworkUrgentHours: 72, outOfNetworkRoutineBusinessDays: 5, clause: 'PHC VI.D' },
    adverseDecisionBy: 'physician',
    urgentDefinition:
      'Urgent (PHC III.A): the routine timeframe could seriously jeopardize the life, health or safety of the member or others due to the member’s psychological state, or, in the opinion of a licensed practitioner with knowledge of the member’s condition, would subject the member to adverse health consequences without the care requested.',
    contacts: {
      memberServicesPhone: '1-800-863-4155',
      tty: '711',
      grievanceInstructions: 'Contact the Grievance Coordinator at Partnership HealthPlan of California (PHC VI.E).',
    },
    languages: ['en', 'es', 'ru', 'tl'],
    delegatedUm: [],
  },
  {
    id: 'ant',
    name: 'Anthem Medi-Cal',
    policy: { number: 'Second Medical Opinion - CA', title: 'Second Medical Opinion - CA' },
    payorIdentifier: 'ant',
    timeZone: 'America/Los_Angeles',
    holidays: CALIFORNIA_HOLIDAYS,
    routing: { inNetworkStraightThrough: true, memberDesignatedPcpStraightThrough: true, clause: 'ANT IV' },
    network: { memberGroupFirst: false, pcpWithinMemberGroup: false, specialistBoardCertification: false, outOfNetworkMediCalEnrollment: false },
    timeframes: { ...FEDERAL_TIMEFRAMES, clause: 'ANT IV (CA_UMXX_041, CA_UMXX_117)' },
    adverseDecisionBy: 'physician',
    urgentDefinition: URGENT_DEFAULT,
    contacts: {
      memberServicesPhone: '1-800-407-4627',
      tty: '711',
      grievanceInstructions: 'Call Anthem Member Services or file a grievance online with Anthem Medi-Cal.',
    },
    languages: ['en', 'es', 'zh', 'vi'],
    delegatedUm: [],
  },
  {
    id: 'bsp',
    name: 'Blue Shield of California Promise Health Plan',
    policy: { number: '10.02.44', title: 'Second Opinion' },
    payorIdentifier: 'bsp',
    timeZone: 'America/Los_Angeles',
    holidays: CALIFORNIA_HOLIDAYS,
    routing: { inNetworkStraightThrough: false, memberDesignatedPcpStraightThrough: true, clause: 'BSP D.I, D.VI.a' },
    network: { memberGroupFirst: true, pcpWithinMemberGroup: true, specialistBoardCertification: true, outOfNetworkMediCalEnrollment: false },
    timeframes: { ...FEDERAL_TIMEFRAMES, clause: 'BSP D.II (P&P 10.2.22 UM Decision Making & Timeframes)' },
    adverseDecisionBy: 'medical-director-or-designee',
    urgentDefinition: URGENT_DEFAULT,
    contacts: {
      memberServicesPhone: '1-800-605-2556',
      tty: '711',
      grievanceInstructions: 'Call Blue Shield Promise Customer Care or write to the Blue Shield Promise Grievance and Appeals Department.',
    },
    languages: ['en', 'es', 'zh', 'vi', 'ko', 'tl'],
    // The demo IPA system (auth/demoClients.ts `demo-backend`) acts for the Valley Medical Group.
    delegatedUm: [{ organization: 'bsp-ipa-a', clause: 'BSP D.IX' }],
  },
];

export const PLANS: readonly PlanProfile[] = PLAN_DATA.map((p) => PlanProfileSchema.parse(p));

export function planById(id: string): PlanProfile | undefined {
  return PLANS.find((p) => p.id === id);
}

export function planByPayorIdentifier(value: string): PlanProfile | undefined {
  return PLANS.find((p) => p.payorIdentifier === value);
}
