import type { CareTeam, Condition, Coverage, Location, Organization, Patient, Practitioner, PractitionerRole, RelatedPerson, Resource } from 'fhir/r4.js';
import { CODE_SYSTEMS, EXTENSIONS, IDENTIFIER_SYSTEMS } from '../fhir/systems.js';

/**
 * Demo data: the four plans with their networks, IPAs/medical groups, PCPs and specialists in and
 * out of network, plan staff, and members with Medi-Cal Coverage. Stable ids, so loading is
 * idempotent and tests can name them.
 */
export const PLANS = [
  { id: 'hpsj', name: 'Health Plan of San Joaquin', city: 'Stockton', lat: 37.96, lon: -121.29 },
  { id: 'phc', name: 'Partnership HealthPlan of California', city: 'Fairfield', lat: 38.25, lon: -122.04 },
  { id: 'ant', name: 'Anthem Medi-Cal', city: 'Sacramento', lat: 38.58, lon: -121.49 },
  { id: 'bsp', name: 'Blue Shield of California Promise Health Plan', city: 'San Diego', lat: 32.72, lon: -117.16 },
] as const;

export const SPECIALTIES = {
  familyMedicine: { code: '207Q00000X', display: 'Family Medicine' },
  internalMedicine: { code: '207R00000X', display: 'Internal Medicine' },
  cardiology: { code: '207RC0000X', display: 'Cardiovascular Disease' },
  orthopaedics: { code: '207X00000X', display: 'Orthopaedic Surgery' },
  oncology: { code: '207RX0202X', display: 'Medical Oncology' },
  psychiatry: { code: '2084P0800X', display: 'Psychiatry' },
  neurology: { code: '2084N0400X', display: 'Neurology' },
} as const;
export type SpecialtyKey = keyof typeof SPECIALTIES;

/** A valid 10-digit NPI (Luhn check digit over the 80840 prefix). */
export function npi(base9: number): string {
  const digits = String(base9).padStart(9, '1');
  const payload = `80840${digits}`;
  let sum = 0;
  [...payload].reverse().forEach((d, i) => {
    let n = Number(d);
    if (i % 2 === 0) {
      n *= 2;
      if (n > 9) n -= 9;
    }
    sum += n;
  });
  return `${digits}${(10 - (sum % 10)) % 10}`;
}

const qualification = (code: string, display: string) => ({ code: { coding: [{ system: CODE_SYSTEMS.qualification, code, display }] } });
const nucc = (k: SpecialtyKey) => ({ coding: [{ system: CODE_SYSTEMS.nucc, ...SPECIALTIES[k] }], text: SPECIALTIES[k].display });
const userRole = (code: string) => ({ coding: [{ system: CODE_SYSTEMS.userRole, code }] });

export interface ProfessionalSpec {
  id: string;
  family: string;
  given: string;
  specialty: SpecialtyKey;
  org: string;
  plans: string[];
  boardCertified?: boolean;
  mediCal?: boolean;
  accepting?: boolean;
  lat: number;
  lon: number;
  roles?: string[];
}

/** A Practitioner, its Location and its Plan-Net PractitionerRole. */
export function professional(spec: ProfessionalSpec, n: number): Resource[] {
  const practitioner: Practitioner = {
    resourceType: 'Practitioner',
    id: spec.id,
    active: true,
    identifier: [{ system: IDENTIFIER_SYSTEMS.npi, value: npi(100000000 + n * 7919) }],
    name: [{ family: spec.family, given: [spec.given], prefix: ['Dr.'] }],
    qualification: [
      ...(spec.boardCertified !== false ? [qualification('board-certified', 'Board certified')] : []),
      ...(spec.mediCal !== false ? [qualification('medi-cal-enrolled', 'Enrolled in Medi-Cal')] : []),
    ],
  };
  const location: Location = {
    resourceType: 'Location',
    id: `loc-${spec.id}`,
    status: 'active',
    name: `${spec.family} clinic`,
    position: { latitude: spec.lat, longitude: spec.lon },
    managingOrganization: { reference: `Organization/${spec.org}` },
  };
  const role: PractitionerRole = {
    resourceType: 'PractitionerRole',
    id: `role-${spec.id}`,
    active: true,
    practitioner: { reference: `Practitioner/${spec.id}`, display: `Dr. ${spec.given} ${spec.family}` },
    organization: { reference: `Organization/${spec.org}` },
    code: [userRole('treating-provider'), userRole('second-opinion-provider'), ...(spec.roles ?? []).map(userRole)],
    specialty: [nucc(spec.specialty)],
    location: [{ reference: `Location/loc-${spec.id}` }],
    extension: [
      ...spec.plans.map((p) => ({ url: EXTENSIONS.planNetNetworkReference, valueReference: { reference: `Organization/${p}-network` } })),
      {
        url: 'http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/newpatients',
        extension: [{ url: 'acceptingPatients', valueCodeableConcept: { coding: [{ system: 'http://hl7.org/fhir/us/davinci-pdex-plan-net/CodeSystem/AcceptingPatientsCS', code: spec.accepting === false ? 'nopt' : 'newpt' }] } }],
      },
    ],
  };
  return [practitioner, location, role];
}

function organizations(): Organization[] {
  const orgs: Organization[] = [];
  for (const plan of PLANS) {
    orgs.push({
      resourceType: 'Organization',
      id: plan.id,
      active: true,
      identifier: [{ system: IDENTIFIER_SYSTEMS.planId, value: plan.id }],
      type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'ins' }] }],
      name: plan.name,
      address: [{ city: plan.city, state: 'CA' }],
    });
    orgs.push({
      resourceType: 'Organization',
      id: `${plan.id}-network`,
      active: true,
      type: [{ coding: [{ system: 'http://hl7.org/fhir/us/davinci-pdex-plan-net/CodeSystem/OrgTypeCS', code: 'ntwk' }] }],
      name: `${plan.name} Medi-Cal network`,
      partOf: { reference: `Organization/${plan.id}` },
    });
    for (const g of ['a', 'b']) {
      orgs.push({
        resourceType: 'Organization',
        id: `${plan.id}-ipa-${g}`,
        active: true,
        identifier: [{ system: IDENTIFIER_SYSTEMS.npi, value: npi(900000000 + plan.id.charCodeAt(0) * 100 + g.charCodeAt(0)) }],
        type: [{ coding: [{ system: 'http://hl7.org/fhir/us/davinci-pdex-plan-net/CodeSystem/OrgTypeCS', code: 'prvgrp' }] }],
        name: `${plan.city} ${g === 'a' ? 'Valley' : 'Coast'} Medical Group`,
      });
    }
  }
  orgs.push({ resourceType: 'Organization', id: 'oon-group', active: true, name: 'Bay Area Academic Specialists (out of network)', type: [{ coding: [{ system: 'http://hl7.org/fhir/us/davinci-pdex-plan-net/CodeSystem/OrgTypeCS', code: 'prvgrp' }] }] });
  return orgs;
}

function professionals(): Resource[] {
  const specs: ProfessionalSpec[] = [];
  for (const plan of PLANS) {
    const at = (d: number) => ({ lat: plan.lat + d, lon: plan.lon - d });
    const P = (id: string, family: string, given: string, specialty: SpecialtyKey, ipa: 'a' | 'b', d: number, extra: Partial<ProfessionalSpec> = {}) =>
      specs.push({ id: `${plan.id}-${id}`, family, given, specialty, org: `${plan.id}-ipa-${ipa}`, plans: [plan.id], ...at(d), ...extra });
    P('pcp-1', 'Nguyen', 'Linh', 'familyMedicine', 'a', 0.01);
    P('pcp-2', 'Okafor', 'Chidi', 'internalMedicine', 'a', 0.03);
    P('pcp-3', 'Ramirez', 'Sofia', 'familyMedicine', 'b', 0.05);
    P('card-1', 'Patel', 'Anil', 'cardiology', 'a', 0.02);
    P('card-2', 'Schmidt', 'Hanna', 'cardiology', 'b', 0.2);
    P('ortho-1', 'Kim', 'Daniel', 'orthopaedics', 'a', 0.04);
    P('ortho-2', 'Haddad', 'Rana', 'orthopaedics', 'b', 0.1, { boardCertified: false });
    P('onc-1', 'Moreno', 'Lucia', 'oncology', 'b', 0.15);
    P('psych-1', 'Begay', 'Marie', 'psychiatry', 'a', 0.06);
    // UM staff work for the plan itself: their roles are at the plan's Organization.
    P('um-1', 'Walker', 'Jordan', 'internalMedicine', 'a', 0.0, { roles: ['um-clinician'], org: plan.id });
    P('md-1', 'Castillo', 'Elena', 'internalMedicine', 'a', 0.0, { roles: ['medical-director'], org: plan.id });
  }
  // Out of network: academic specialists; one is not enrolled in Medi-Cal (PHC VI.A).
  specs.push({ id: 'oon-neuro-1', family: 'Fischer', given: 'Paul', specialty: 'neurology', org: 'oon-group', plans: [], lat: 37.77, lon: -122.42 });
  specs.push({ id: 'oon-neuro-2', family: 'Osei', given: 'Ama', specialty: 'neurology', org: 'oon-group', plans: [], lat: 37.78, lon: -122.41, mediCal: false });
  specs.push({ id: 'oon-card-1', family: 'Lindqvist', given: 'Eva', specialty: 'cardiology', org: 'oon-group', plans: [], lat: 37.76, lon: -122.45 });
  specs.push({ id: 'oon-onc-1', family: 'Tanaka', given: 'Hiro', specialty: 'oncology', org: 'oon-group', plans: [], lat: 37.79, lon: -122.4 });
  return specs.flatMap((s, i) => professional(s, i + 1));
}

export interface MemberSpec {
  id: string;
  family: string;
  given: string;
  birthDate: string;
  gender: Patient['gender'];
  plan: string;
  language: 'en' | 'es';
  group: 'a' | 'b';
  specialist?: string;
  condition?: { code: string; display: string; bh?: boolean };
}

const MEMBERS: MemberSpec[] = [
  { id: 'member-hpsj-1', family: 'Garcia', given: 'Maria', birthDate: '1968-04-12', gender: 'female', plan: 'hpsj', language: 'es', group: 'a', specialist: 'card-1', condition: { code: '49436004', display: 'Atrial fibrillation' } },
  { id: 'member-hpsj-2', family: 'Johnson', given: 'Derek', birthDate: '1979-09-30', gender: 'male', plan: 'hpsj', language: 'en', group: 'b', specialist: 'ortho-1', condition: { code: '239873007', display: 'Osteoarthritis of knee' } },
  { id: 'member-phc-1', family: 'Thompson', given: 'Alice', birthDate: '1955-01-22', gender: 'female', plan: 'phc', language: 'en', group: 'a', specialist: 'onc-1', condition: { code: '254837009', display: 'Malignant neoplasm of breast' } },
  { id: 'member-phc-2', family: 'Lopez', given: 'Javier', birthDate: '1990-06-15', gender: 'male', plan: 'phc', language: 'es', group: 'b', specialist: 'psych-1', condition: { code: '35489007', display: 'Depressive disorder', bh: true } },
  { id: 'member-ant-1', family: 'Chen', given: 'Wei', birthDate: '1972-11-03', gender: 'male', plan: 'ant', language: 'en', group: 'a', specialist: 'card-1', condition: { code: '84114007', display: 'Heart failure' } },
  { id: 'member-ant-2', family: 'Williams', given: 'Grace', birthDate: '1983-02-27', gender: 'female', plan: 'ant', language: 'en', group: 'b' },
  { id: 'member-bsp-1', family: 'Hernandez', given: 'Rosa', birthDate: '1961-08-08', gender: 'female', plan: 'bsp', language: 'es', group: 'a', specialist: 'ortho-1', condition: { code: '202855006', display: 'Lumbar disc herniation' } },
  { id: 'member-bsp-2', family: 'Brown', given: 'Tyrone', birthDate: '1975-12-19', gender: 'male', plan: 'bsp', language: 'en', group: 'b', specialist: 'card-2', condition: { code: '53741008', display: 'Coronary arteriosclerosis' } },
];

/** A member: Patient, Medi-Cal Coverage, CareTeam and, when given, a Condition. */
export function member(m: MemberSpec, n: number): Resource[] {
  const patient: Patient = {
    resourceType: 'Patient',
    id: m.id,
    active: true,
    identifier: [
      { system: IDENTIFIER_SYSTEMS.mediCalCin, value: `9${String(10000000 + n * 1337).slice(0, 7)}A`, type: { text: 'Medi-Cal CIN' } },
      { system: IDENTIFIER_SYSTEMS.planMemberId, value: `${m.plan.toUpperCase()}-${100200 + n}` },
    ],
    name: [{ family: m.family, given: [m.given] }],
    birthDate: m.birthDate,
    gender: m.gender,
    address: [{ city: PLANS.find((p) => p.id === m.plan)!.city, state: 'CA' }],
    communication: [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: m.language }] }, preferred: true }],
    generalPractitioner: [{ reference: `PractitionerRole/role-${m.plan}-pcp-${m.group === 'a' ? 1 : 3}` }],
  };
  const coverage: Coverage = {
    resourceType: 'Coverage',
    id: `coverage-${m.id}`,
    status: 'active',
    identifier: [{ system: IDENTIFIER_SYSTEMS.planMemberId, value: `${m.plan.toUpperCase()}-${100200 + n}` }],
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'SUBSIDIZ', display: 'subsidized health program' }], text: 'Medi-Cal managed care' },
    beneficiary: { reference: `Patient/${m.id}` },
    relationship: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/subscriber-relationship', code: 'self' }] },
    period: { start: '2026-01-01', end: '2026-12-31' },
    payor: [{ reference: `Organization/${m.plan}` }],
    class: [
      { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/coverage-class', code: 'plan' }] }, value: m.plan, name: 'Medi-Cal' },
      { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/coverage-class', code: 'group' }] }, value: `${m.plan}-ipa-${m.group}`, name: 'IPA / medical group' },
    ],
  };
  const participants = [`PractitionerRole/role-${m.plan}-pcp-${m.group === 'a' ? 1 : 3}`, ...(m.specialist ? [`PractitionerRole/role-${m.plan}-${m.specialist}`] : [])];
  const careTeam: CareTeam = {
    resourceType: 'CareTeam',
    id: `careteam-${m.id}`,
    status: 'active',
    subject: { reference: `Patient/${m.id}` },
    participant: participants.map((reference, i) => ({ member: { reference }, role: [{ text: i === 0 ? 'Primary care provider' : 'Treating specialist' }] })),
  };
  const out: Resource[] = [patient, coverage, careTeam];
  if (m.condition) {
    const condition: Condition = {
      resourceType: 'Condition',
      id: `condition-${m.id}`,
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
      verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item' }] }],
      code: { coding: [{ system: 'http://snomed.info/sct', code: m.condition.code, display: m.condition.display }], text: m.condition.display },
      subject: { reference: `Patient/${m.id}` },
    };
    out.push(condition);
  }
  return out;
}

function representative(): RelatedPerson {
  return {
    resourceType: 'RelatedPerson',
    id: 'rep-member-hpsj-1',
    active: true,
    patient: { reference: 'Patient/member-hpsj-1' },
    relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'DAU', display: 'daughter' }], text: 'Authorized representative' }],
    name: [{ family: 'Garcia', given: ['Elena'] }],
  };
}

/** A plan-staff member who treats no one (no specialty, network or clinic): a Practitioner and one role at the plan. */
function planStaffMember(planId: string, practitioner: Omit<Practitioner, 'resourceType' | 'active'> & { id: string }, display: string, role: string): [Practitioner, PractitionerRole] {
  return [
    { resourceType: 'Practitioner', active: true, ...practitioner },
    {
      resourceType: 'PractitionerRole',
      id: `role-${practitioner.id}`,
      active: true,
      practitioner: { reference: `Practitioner/${practitioner.id}`, display },
      organization: { reference: `Organization/${planId}` },
      code: [userRole(role)],
    },
  ];
}

/** R17 (PHC VI.E): each plan's Grievance Coordinator. */
function grievanceCoordinators(): Resource[] {
  return PLANS.flatMap((plan) => planStaffMember(plan.id, { id: `${plan.id}-gc-1`, name: [{ family: 'Reyes', given: ['Morgan'] }] }, 'Morgan Reyes', 'grievance-coordinator'));
}

/**
 * Each plan's physician designee (BSP C.I: "the Medical Director or physician designee"): the physician who resolves
 * a clinical grievance about a case the Medical Director decided (42 CFR 438.406(b)(2)).
 */
function physicianDesignees(): Resource[] {
  return PLANS.flatMap((plan) =>
    planStaffMember(plan.id, { id: `${plan.id}-md-2`, name: [{ family: 'Ahmadi', given: ['Farah'], prefix: ['Dr.'] }], qualification: [qualification('board-certified', 'Board certified')] }, 'Dr. Farah Ahmadi', 'medical-director'),
  );
}

export function demoResources(): Resource[] {
  return [...organizations(), ...professionals(), ...grievanceCoordinators(), ...physicianDesignees(), ...MEMBERS.flatMap((m, i) => member(m, i + 1)), representative()];
}
