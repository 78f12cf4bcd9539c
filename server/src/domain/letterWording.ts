import { esc } from './html.js';
import type { PlanProfile } from './plans.js';

export type Language = 'en' | 'es';
export type LetterKind = 'approval' | 'denial' | 'modification' | 'delay' | 'extension' | 'report';
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
}

const phone = (plan: PlanProfile) => `${plan.contacts.memberServicesPhone} (TTY ${plan.contacts.tty})`;

const MEMBER_EN: Wording = {
  title: { approval: 'Your second opinion is approved', denial: 'Notice of Action: your second opinion request is denied', modification: 'Notice of Action: your second opinion request is changed', delay: 'We need more information to decide', extension: 'We are taking more time to decide', report: 'Your second opinion report' },
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
    'If you are not satisfied with the appeal decision, or we do not decide in 30 days, you can ask for an Independent Medical Review or file a complaint with the California Department of Managed Health Care (DMHC) Help Center: 1-888-466-2219, TDD 1-877-688-9891, www.dmhc.ca.gov.',
    'You can ask for a State Hearing with the California Department of Social Services within 120 days of the appeal decision: call 1-800-743-8525 (TDD 1-800-952-8349).',
    'You can ask us, free of charge, for the criteria we used to decide (H&S 1363.5).',
  ],
  contact: (plan) => `Questions? Call ${phone(plan)}. This letter is available in other languages and formats at no cost.`,
};

const MEMBER_ES: Wording = {
  title: { approval: 'Su segunda opinión está aprobada', denial: 'Aviso de acción: su solicitud de segunda opinión fue negada', modification: 'Aviso de acción: su solicitud de segunda opinión fue cambiada', delay: 'Necesitamos más información para decidir', extension: 'Tomaremos más tiempo para decidir', report: 'El informe de su segunda opinión' },
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
    'Si no está conforme con la decisión de la apelación, o si no decidimos en 30 días, puede pedir una Revisión Médica Independiente o presentar una queja ante el Centro de Ayuda del Departamento de Atención Médica Administrada de California (DMHC): 1-888-466-2219, TDD 1-877-688-9891, www.dmhc.ca.gov.',
    'Puede pedir una Audiencia Estatal con el Departamento de Servicios Sociales de California dentro de los 120 días de la decisión de la apelación: llame al 1-800-743-8525 (TDD 1-800-952-8349).',
    'Puede pedirnos, sin costo, los criterios que usamos para decidir (H&S 1363.5).',
  ],
  contact: (plan) => `¿Preguntas? Llame al ${phone(plan)}. Esta carta está disponible en otros idiomas y formatos sin costo.`,
};

/**
 * The provider's copy (BSP D.V "both the member and provider", H&S 1367.01(h)(3)): the same facts, reasons
 * and criteria, about "your patient"; the rights are those the member was told of, in the member's words.
 */
const PROVIDER_EN: Wording = {
  ...MEMBER_EN,
  title: { approval: 'Copy: your patient’s second opinion is approved', denial: 'Copy of a Notice of Action: your patient’s second opinion request is denied', modification: 'Copy of a Notice of Action: your patient’s second opinion request is changed', delay: 'Copy: we need more information to decide your patient’s request', extension: 'Copy: we are taking more time to decide your patient’s request', report: 'Copy: your patient’s second opinion report' },
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
};

const PROVIDER_ES: Wording = {
  ...MEMBER_ES,
  title: { approval: 'Copia: la segunda opinión de su paciente está aprobada', denial: 'Copia de un aviso de acción: la solicitud de segunda opinión de su paciente fue negada', modification: 'Copia de un aviso de acción: la solicitud de segunda opinión de su paciente fue cambiada', delay: 'Copia: necesitamos más información para decidir la solicitud de su paciente', extension: 'Copia: tomaremos más tiempo para decidir la solicitud de su paciente', report: 'Copia: el informe de segunda opinión de su paciente' },
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
};

export const WORDING: Record<Language, Record<Audience, Wording>> = {
  en: { member: MEMBER_EN, provider: PROVIDER_EN },
  es: { member: MEMBER_ES, provider: PROVIDER_ES },
};
