import type { GrievanceOutcome } from './grievance.js';
import { esc } from './html.js';
import type { PlanProfile } from './plans.js';

export type Language = 'en' | 'es';
export type LetterKind = 'approval' | 'denial' | 'modification' | 'delay' | 'extension' | 'report' | 'grievance-urgent' | 'grievance-acknowledgment' | 'grievance-resolution';
/** Whom a letter speaks to: the member (or their representative), or a provider about their patient. */
export type Audience = 'member' | 'provider';

/** The sentences of the notices in one language, for one audience. Values are escaped by the caller. */
export interface Wording {
  title: Record<LetterKind, string>;
  greeting: (memberName: string) => string;
  approved: (professional: string) => string;
  /** Who gives the opinion, when the letter cannot name them. */
  qualifiedProfessional: string;
  preauth: (ref: string) => string;
  noCost: string;
  transport: string;
  denied: string;
  modified: string;
  reason: string;
  criteria: string;
  delay: (date: string) => string;
  missing: string;
  extension: (date: string) => string;
  extensionGrievance: (plan: PlanProfile) => string;
  report: string;
  rightsTitle: string;
  /** R10: the rights the member is told of; a provider's copy repeats them as told to the member. */
  rights: (plan: PlanProfile) => string[];
  contact: (plan: PlanProfile) => string;
  /** R17 (28 CCR 1300.68(d)(1)): the grievance was received, and when its resolution is due. */
  grievanceReceived: (resolutionDue: string) => string;
  /** H&S 1368.01(b): an urgent grievance, and the right to go to the DMHC at once. */
  grievanceExpedited: string;
  /** H&S 1368.01(b): sent at filing, an urgent grievance: handled as urgent and decided by its due time (72 hours). */
  grievanceUrgent: (resolutionDue: string) => string;
  /** H&S 1368.01(b): the member is told at once of their right to notify the DMHC of the grievance. */
  grievanceDmhcNow: string;
  grievanceStatement: string;
  grievanceOutcome: Record<GrievanceOutcome, string>;
  /** R17: after the resolution, the DMHC (complaint, Independent Medical Review) and the State Hearing. */
  grievanceRights: (plan: PlanProfile) => string[];
  /**
   * H&S 1368.02(b): the statement every written notice of the grievance process and every response to a grievance
   * carries, in a paragraph of its own, with the numbers, the plan's telephone and the website in boldface.
   */
  dmhcStatement: (plan: PlanProfile) => string;
}

const phone = (plan: PlanProfile) => `${plan.contacts.memberServicesPhone} (TTY ${plan.contacts.tty})`;

/** The DMHC Help Center and the State Hearing, worded once for the notices of action (R10) and the grievance resolutions (R17). */
const DMHC_HELP_CENTER = '1-888-466-2219, TDD 1-877-688-9891, www.dmhc.ca.gov';
const STATE_HEARING_EN = 'You can ask for a State Hearing with the California Department of Social Services within 120 days of the appeal decision: call 1-800-743-8525 (TDD 1-800-952-8349).';
const STATE_HEARING_ES = 'Puede pedir una Audiencia Estatal con el Departamento de Servicios Sociales de California dentro de los 120 días de la decisión de la apelación: llame al 1-800-743-8525 (TDD 1-800-952-8349).';

const bold = (text: string) => `<strong>${esc(text)}</strong>`;

const DMHC_STATEMENT_EN = (plan: PlanProfile) =>
  `The California Department of Managed Health Care is responsible for regulating health care service plans. If you have a grievance against your health plan, you should first telephone your health plan at ${bold(plan.contacts.memberServicesPhone)} and use your health plan’s grievance process before contacting the department. Utilizing this grievance procedure does not prohibit any potential legal rights or remedies that may be available to you. If you need help with a grievance involving an emergency, a grievance that has not been satisfactorily resolved by your health plan, or a grievance that has remained unresolved for more than 30 days, you may call the department for assistance. You may also be eligible for an Independent Medical Review (IMR). If you are eligible for IMR, the IMR process will provide an impartial review of medical decisions made by a health plan related to the medical necessity of a proposed service or treatment, coverage decisions for treatments that are experimental or investigational in nature and payment disputes for emergency or urgent medical services. The department also has a toll-free telephone number (${bold('1-888-466-2219')}) and a TDD line (${bold('1-877-688-9891')}) for the hearing and speech impaired. The department’s internet website ${bold('www.dmhc.ca.gov')} has complaint forms, IMR application forms and instructions online.`;

/** The same statement in Spanish, for a letter in the member's language (R10); the English text is the statute's. */
const DMHC_STATEMENT_ES = (plan: PlanProfile) =>
  `El Departamento de Atención Médica Administrada de California es responsable de regular los planes de servicios de atención médica. Si tiene una queja contra su plan de salud, primero debe llamar por teléfono a su plan de salud al ${bold(plan.contacts.memberServicesPhone)} y usar el proceso de quejas de su plan de salud antes de comunicarse con el departamento. Usar este procedimiento de quejas no le impide ejercer los derechos o recursos legales que pueda tener. Si necesita ayuda con una queja relacionada con una emergencia, con una queja que su plan de salud no resolvió de manera satisfactoria o con una queja que sigue sin resolverse después de más de 30 días, puede llamar al departamento para pedir ayuda. También puede tener derecho a una Revisión Médica Independiente (IMR). Si tiene derecho a una IMR, el proceso de IMR ofrecerá una revisión imparcial de las decisiones médicas tomadas por un plan de salud sobre la necesidad médica de un servicio o tratamiento propuesto, de las decisiones de cobertura de tratamientos de naturaleza experimental o en investigación y de las disputas de pago por servicios médicos de emergencia o urgencia. El departamento también tiene un número de teléfono gratuito (${bold('1-888-466-2219')}) y una línea TDD (${bold('1-877-688-9891')}) para personas con problemas de audición o del habla. El sitio web del departamento, ${bold('www.dmhc.ca.gov')}, tiene formularios de queja, formularios de solicitud de IMR e instrucciones en línea.`;

const MEMBER_EN: Wording = {
  title: { approval: 'Your second opinion is approved', denial: 'Notice of Action: your second opinion request is denied', modification: 'Notice of Action: your second opinion request is changed', delay: 'We need more information to decide', extension: 'We are taking more time to decide', report: 'Your second opinion report', 'grievance-urgent': 'Your urgent grievance: you can contact the DMHC now', 'grievance-acknowledgment': 'We received your grievance', 'grievance-resolution': 'The decision on your grievance' },
  greeting: (name) => `Dear ${name},`,
  approved: (p) => `Your request for a second medical opinion is approved. The professional who will give it is <strong>${p}</strong>.`,
  qualifiedProfessional: 'a qualified professional in our network',
  preauth: (r) => `Authorization number: <strong>${r}</strong>.`,
  noCost: 'You pay nothing for this second opinion.',
  transport: 'We will arrange transportation to the appointment. Call Member Services to schedule your ride.',
  denied: 'We denied your request for a second medical opinion.',
  modified: 'We did not approve the professional you asked for. We approved a qualified professional in our network instead.',
  reason: 'Why we decided this',
  criteria: 'Rules and criteria we used',
  delay: (d) => `We need more information to decide your request. We will decide by ${d}.`,
  missing: 'We asked your doctor for:',
  extension: (d) => `We are taking more time to decide your request. We will decide by ${d}.`,
  extensionGrievance: (plan) => `If you disagree with this extension, you can file a grievance: ${esc(plan.contacts.grievanceInstructions)} Call ${phone(plan)}.`,
  report: 'The second-opinion professional sent the consultation report. Ask your doctor to go over it with you.',
  rightsTitle: 'Your Rights',
  rights: (plan) => [
    `You can ask for an appeal within 60 days of the date of this letter. Call ${phone(plan)} or write to ${esc(plan.name)}.`,
    `You can file a grievance at any time: ${esc(plan.contacts.grievanceInstructions)}`,
    `If you are not satisfied with the appeal decision, or we do not decide in 30 days, you can ask for an Independent Medical Review or file a complaint with the California Department of Managed Health Care (DMHC) Help Center: ${DMHC_HELP_CENTER}.`,
    STATE_HEARING_EN,
    'You can ask us, free of charge, for the criteria we used to decide (H&S 1363.5).',
  ],
  contact: (plan) => `Questions? Call ${phone(plan)}. This letter is available in other languages and formats at no cost.`,
  grievanceReceived: (d) => `We received your grievance. Our Grievance Coordinator is looking into it, and we will send you our decision in writing by ${d}.`,
  grievanceExpedited: `Because your health faces an imminent and serious threat, we are handling your grievance as urgent and will decide within 72 hours. You can also contact the California Department of Managed Health Care (DMHC) Help Center right away: ${DMHC_HELP_CENTER}.`,
  grievanceUrgent: (d) => `We received your grievance. Because your health faces an imminent and serious threat, we are handling it as urgent: we will decide it and tell you our decision by ${d}, within 72 hours of receiving it.`,
  grievanceDmhcNow: `You have the right to tell the California Department of Managed Health Care (DMHC) about your grievance right away. You do not have to wait for our decision or finish our grievance process first. Call the DMHC Help Center: ${DMHC_HELP_CENTER}.`,
  grievanceStatement: 'What you told us',
  grievanceOutcome: {
    upheld: 'We decided your grievance in your favor.',
    'partly-upheld': 'We decided your grievance partly in your favor.',
    'not-upheld': 'We did not decide your grievance in your favor.',
  },
  dmhcStatement: DMHC_STATEMENT_EN,
  grievanceRights: () => [
    `If you are not satisfied with this decision, or we did not resolve your grievance within 30 days, you can file a complaint with the California Department of Managed Health Care (DMHC) Help Center, and ask for an Independent Medical Review if a service was denied, changed or delayed as not medically necessary: ${DMHC_HELP_CENTER}.`,
    STATE_HEARING_EN,
  ],
};

const MEMBER_ES: Wording = {
  title: { approval: 'Su segunda opinión está aprobada', denial: 'Aviso de acción: su solicitud de segunda opinión fue negada', modification: 'Aviso de acción: su solicitud de segunda opinión fue cambiada', delay: 'Necesitamos más información para decidir', extension: 'Tomaremos más tiempo para decidir', report: 'El informe de su segunda opinión', 'grievance-urgent': 'Su queja urgente: puede comunicarse con el DMHC ahora', 'grievance-acknowledgment': 'Recibimos su queja', 'grievance-resolution': 'La decisión sobre su queja' },
  greeting: (name) => `Estimado(a) ${name},`,
  approved: (p) => `Su solicitud de una segunda opinión médica está aprobada. El profesional que la dará es <strong>${p}</strong>.`,
  qualifiedProfessional: 'un profesional calificado de nuestra red',
  preauth: (r) => `Número de autorización: <strong>${r}</strong>.`,
  noCost: 'Usted no paga nada por esta segunda opinión.',
  transport: 'Le daremos transporte a la cita. Llame a Servicios para Miembros para programar su viaje.',
  denied: 'Negamos su solicitud de una segunda opinión médica.',
  modified: 'No aprobamos al profesional que usted pidió. En su lugar aprobamos a un profesional calificado de nuestra red.',
  reason: 'Por qué decidimos esto',
  criteria: 'Reglas y criterios que usamos',
  delay: (d) => `Necesitamos más información para decidir su solicitud. Decidiremos a más tardar el ${d}.`,
  missing: 'Le pedimos a su médico:',
  extension: (d) => `Tomaremos más tiempo para decidir su solicitud. Decidiremos a más tardar el ${d}.`,
  extensionGrievance: (plan) => `Si no está de acuerdo con esta extensión, puede presentar una queja: ${esc(plan.contacts.grievanceInstructions)} Llame al ${phone(plan)}.`,
  report: 'El profesional de la segunda opinión envió el informe de consulta. Pida a su médico que lo revise con usted.',
  rightsTitle: 'Sus derechos',
  rights: (plan) => [
    `Puede pedir una apelación dentro de los 60 días de la fecha de esta carta. Llame al ${phone(plan)} o escriba a ${esc(plan.name)}.`,
    `Puede presentar una queja en cualquier momento: ${esc(plan.contacts.grievanceInstructions)}`,
    `Si no está conforme con la decisión de la apelación, o si no decidimos en 30 días, puede pedir una Revisión Médica Independiente o presentar una queja ante el Centro de Ayuda del Departamento de Atención Médica Administrada de California (DMHC): ${DMHC_HELP_CENTER}.`,
    STATE_HEARING_ES,
    'Puede pedirnos, sin costo, los criterios que usamos para decidir (H&S 1363.5).',
  ],
  contact: (plan) => `¿Preguntas? Llame al ${phone(plan)}. Esta carta está disponible en otros idiomas y formatos sin costo.`,
  grievanceReceived: (d) => `Recibimos su queja. Nuestro Coordinador de Quejas la está revisando y le enviaremos nuestra decisión por escrito a más tardar el ${d}.`,
  grievanceExpedited: `Como su salud enfrenta una amenaza inminente y grave, tratamos su queja como urgente y decidiremos dentro de 72 horas. También puede comunicarse de inmediato con el Centro de Ayuda del Departamento de Atención Médica Administrada de California (DMHC): ${DMHC_HELP_CENTER}.`,
  grievanceUrgent: (d) => `Recibimos su queja. Como su salud enfrenta una amenaza inminente y grave, la tratamos como urgente: la decidiremos y le informaremos nuestra decisión a más tardar el ${d}, dentro de las 72 horas de haberla recibido.`,
  grievanceDmhcNow: `Usted tiene derecho a informar de inmediato sobre su queja al Departamento de Atención Médica Administrada de California (DMHC). No tiene que esperar nuestra decisión ni terminar primero nuestro proceso de quejas. Llame al Centro de Ayuda del DMHC: ${DMHC_HELP_CENTER}.`,
  grievanceStatement: 'Lo que usted nos dijo',
  grievanceOutcome: {
    upheld: 'Decidimos su queja a su favor.',
    'partly-upheld': 'Decidimos su queja en parte a su favor.',
    'not-upheld': 'No decidimos su queja a su favor.',
  },
  dmhcStatement: DMHC_STATEMENT_ES,
  grievanceRights: () => [
    `Si no está conforme con esta decisión, o si no resolvimos su queja dentro de los 30 días, puede presentar una queja ante el Centro de Ayuda del Departamento de Atención Médica Administrada de California (DMHC) y pedir una Revisión Médica Independiente si un servicio fue negado, cambiado o demorado por no ser médicamente necesario: ${DMHC_HELP_CENTER}.`,
    STATE_HEARING_ES,
  ],
};

/**
 * The provider's copy (BSP D.V "both the member and provider", H&S 1367.01(h)(3)): the same facts, reasons
 * and criteria, about "your patient"; the rights are those the member was told of, in the member's words.
 */
const PROVIDER_EN: Wording = {
  ...MEMBER_EN,
  title: { approval: 'Copy: your patient’s second opinion is approved', denial: 'Copy of a Notice of Action: your patient’s second opinion request is denied', modification: 'Copy of a Notice of Action: your patient’s second opinion request is changed', delay: 'Copy: we need more information to decide your patient’s request', extension: 'Copy: we are taking more time to decide your patient’s request', report: 'Copy: your patient’s second opinion report', 'grievance-urgent': 'Copy: the urgent grievance filed for your patient', 'grievance-acknowledgment': 'Copy: we received the grievance filed for your patient', 'grievance-resolution': 'Copy: the decision on the grievance filed for your patient' },
  greeting: (name) => `Regarding your patient ${name}: this is a copy of the notice we sent to your patient.`,
  approved: (p) => `The request for a second medical opinion for your patient is approved. The professional who will give it is <strong>${p}</strong>.`,
  noCost: 'Your patient pays nothing for this second opinion.',
  transport: 'We will arrange transportation to the appointment for your patient.',
  denied: 'We denied the request for a second medical opinion for your patient.',
  modified: 'We did not approve the professional requested for your patient. We approved a qualified professional in our network instead.',
  delay: (d) => `We need more information to decide the second-opinion request for your patient. We will decide by ${d}.`,
  missing: 'We asked the treating provider for:',
  extension: (d) => `We are taking more time to decide the second-opinion request for your patient. We will decide by ${d}.`,
  extensionGrievance: (plan) => `We told your patient that if they disagree with this extension, they can file a grievance: ${esc(plan.contacts.grievanceInstructions)} Call ${phone(plan)}.`,
  report: 'The second-opinion professional sent the consultation report for your patient. Please go over it with your patient.',
  rightsTitle: 'The rights we told your patient of',
  contact: (plan) => `Questions about this case? Call ${esc(plan.name)} at ${phone(plan)}.`,
  grievanceReceived: (d) => `We received the grievance filed for your patient. Our Grievance Coordinator is looking into it, and we will send our decision in writing by ${d}.`,
  grievanceUrgent: (d) => `We received the grievance filed for your patient. Because your patient’s health faces an imminent and serious threat, we are handling it as urgent and will decide it by ${d}, within 72 hours of receiving it.`,
  grievanceDmhcNow: `We told your patient that they have the right to tell the California Department of Managed Health Care (DMHC) about the grievance right away, without waiting for our decision: ${DMHC_HELP_CENTER}.`,
  grievanceStatement: 'What we were told',
  grievanceOutcome: {
    upheld: 'We decided the grievance in your patient’s favor.',
    'partly-upheld': 'We decided the grievance partly in your patient’s favor.',
    'not-upheld': 'We did not decide the grievance in your patient’s favor.',
  },
};

const PROVIDER_ES: Wording = {
  ...MEMBER_ES,
  title: { approval: 'Copia: la segunda opinión de su paciente está aprobada', denial: 'Copia de un aviso de acción: la solicitud de segunda opinión de su paciente fue negada', modification: 'Copia de un aviso de acción: la solicitud de segunda opinión de su paciente fue cambiada', delay: 'Copia: necesitamos más información para decidir la solicitud de su paciente', extension: 'Copia: tomaremos más tiempo para decidir la solicitud de su paciente', report: 'Copia: el informe de segunda opinión de su paciente', 'grievance-urgent': 'Copia: la queja urgente presentada por su paciente', 'grievance-acknowledgment': 'Copia: recibimos la queja presentada por su paciente', 'grievance-resolution': 'Copia: la decisión sobre la queja presentada por su paciente' },
  greeting: (name) => `Sobre su paciente ${name}: esta es una copia del aviso que le enviamos a su paciente.`,
  approved: (p) => `La solicitud de una segunda opinión médica para su paciente está aprobada. El profesional que la dará es <strong>${p}</strong>.`,
  noCost: 'Su paciente no paga nada por esta segunda opinión.',
  transport: 'Daremos transporte a la cita a su paciente.',
  denied: 'Negamos la solicitud de una segunda opinión médica para su paciente.',
  modified: 'No aprobamos al profesional solicitado para su paciente. En su lugar aprobamos a un profesional calificado de nuestra red.',
  delay: (d) => `Necesitamos más información para decidir la solicitud de segunda opinión de su paciente. Decidiremos a más tardar el ${d}.`,
  missing: 'Le pedimos al proveedor que trata a su paciente:',
  extension: (d) => `Tomaremos más tiempo para decidir la solicitud de segunda opinión de su paciente. Decidiremos a más tardar el ${d}.`,
  extensionGrievance: (plan) => `Le informamos a su paciente que, si no está de acuerdo con esta extensión, puede presentar una queja: ${esc(plan.contacts.grievanceInstructions)} Llame al ${phone(plan)}.`,
  report: 'El profesional de la segunda opinión envió el informe de consulta de su paciente. Por favor revíselo con su paciente.',
  rightsTitle: 'Los derechos que le informamos a su paciente',
  contact: (plan) => `¿Preguntas sobre este caso? Llame a ${esc(plan.name)} al ${phone(plan)}.`,
  grievanceReceived: (d) => `Recibimos la queja presentada por su paciente. Nuestro Coordinador de Quejas la está revisando y enviaremos nuestra decisión por escrito a más tardar el ${d}.`,
  grievanceUrgent: (d) => `Recibimos la queja presentada por su paciente. Como la salud de su paciente enfrenta una amenaza inminente y grave, la tratamos como urgente y la decidiremos a más tardar el ${d}, dentro de las 72 horas de haberla recibido.`,
  grievanceDmhcNow: `Le informamos a su paciente que tiene derecho a informar de inmediato sobre la queja al Departamento de Atención Médica Administrada de California (DMHC), sin esperar nuestra decisión: ${DMHC_HELP_CENTER}.`,
  grievanceStatement: 'Lo que se nos dijo',
  grievanceOutcome: {
    upheld: 'Decidimos la queja a favor de su paciente.',
    'partly-upheld': 'Decidimos la queja en parte a favor de su paciente.',
    'not-upheld': 'No decidimos la queja a favor de su paciente.',
  },
};

export const WORDING: Record<Language, Record<Audience, Wording>> = {
  en: { member: MEMBER_EN, provider: PROVIDER_EN },
  es: { member: MEMBER_ES, provider: PROVIDER_ES },
};
