import { esc } from './html.js';
import type { PlanProfile } from './plans.js';

export type Language = 'en' | 'es';
export type LetterKind = 'approval' | 'denial' | 'modification' | 'delay' | 'extension' | 'report';

export interface LetterFacts {
  plan: PlanProfile;
  language: Language;
  audience: 'member' | 'provider';
  memberName: string;
  date: string;
  professionalName?: string;
  preAuthRef?: string;
  transportation?: boolean;
  reason?: string;
  criteria?: string;
  newDueDate?: string;
  /** H&S 1367.01(h)(4): the information requested and not yet received. */
  missing?: string[];
  reportSummary?: string;
}

/** The member's language when the plan has templates for it; English otherwise (R10). */
export function letterLanguage(plan: PlanProfile, preferred: string | undefined): Language {
  const code = (preferred ?? 'en').slice(0, 2).toLowerCase();
  return code === 'es' && plan.languages.includes('es') ? 'es' : 'en';
}

const T = {
  en: {
    title: { approval: 'Your second opinion is approved', denial: 'Notice of Action: your second opinion request is denied', modification: 'Notice of Action: your second opinion request is changed', delay: 'We need more information to decide', extension: 'We are taking more time to decide', report: 'Your second opinion report' },
    dear: 'Dear',
    approved: (p: string) => `Your request for a second medical opinion is approved. The professional who will give it is <strong>${p}</strong>.`,
    preauth: (r: string) => `Authorization number: <strong>${r}</strong>.`,
    noCost: 'You pay nothing for this second opinion.',
    transport: 'We will arrange transportation to the appointment. Call Member Services to schedule your ride.',
    denied: 'We denied your request for a second medical opinion.',
    modified: 'We did not approve the professional you asked for. We approved a qualified professional in our network instead.',
    reason: 'Why we decided this',
    criteria: 'Rules and criteria we used',
    delay: (d: string) => `We need more information to decide your request. We will decide by ${d}.`,
    missing: 'We asked your doctor for:',
    extension: (d: string) => `We are taking more time to decide your request. We will decide by ${d}.`,
    extensionGrievance: (plan: PlanProfile) => `If you disagree with this extension, you can file a grievance: ${esc(plan.contacts.grievanceInstructions)} Call ${plan.contacts.memberServicesPhone} (TTY ${plan.contacts.tty}).`,
    report: 'The second-opinion professional sent the consultation report. Ask your doctor to go over it with you.',
    rightsTitle: 'Your Rights',
    rights: (plan: PlanProfile) => [
      `You can ask for an appeal within 60 days of the date of this letter. Call ${plan.contacts.memberServicesPhone} (TTY ${plan.contacts.tty}) or write to ${esc(plan.name)}.`,
      `You can file a grievance at any time: ${esc(plan.contacts.grievanceInstructions)}`,
      'If you are not satisfied with the appeal decision, or we do not decide in 30 days, you can ask for an Independent Medical Review or file a complaint with the California Department of Managed Health Care (DMHC) Help Center: 1-888-466-2219, TDD 1-877-688-9891, www.dmhc.ca.gov.',
      'You can ask for a State Hearing with the California Department of Social Services within 120 days of the appeal decision: call 1-800-743-8525 (TDD 1-800-952-8349).',
      'You can ask us, free of charge, for the criteria we used to decide (H&S 1363.5).',
    ],
    contact: (plan: PlanProfile) => `Questions? Call ${plan.contacts.memberServicesPhone} (TTY ${plan.contacts.tty}). This letter is available in other languages and formats at no cost.`,
  },
  es: {
    title: { approval: 'Su segunda opinión está aprobada', denial: 'Aviso de acción: su solicitud de segunda opinión fue negada', modification: 'Aviso de acción: su solicitud de segunda opinión fue cambiada', delay: 'Necesitamos más información para decidir', extension: 'Tomaremos más tiempo para decidir', report: 'El informe de su segunda opinión' },
    dear: 'Estimado(a)',
    approved: (p: string) => `Su solicitud de una segunda opinión médica está aprobada. El profesional que la dará es <strong>${p}</strong>.`,
    preauth: (r: string) => `Número de autorización: <strong>${r}</strong>.`,
    noCost: 'Usted no paga nada por esta segunda opinión.',
    transport: 'Le daremos transporte a la cita. Llame a Servicios para Miembros para programar su viaje.',
    denied: 'Negamos su solicitud de una segunda opinión médica.',
    modified: 'No aprobamos al profesional que usted pidió. En su lugar aprobamos a un profesional calificado de nuestra red.',
    reason: 'Por qué decidimos esto',
    criteria: 'Reglas y criterios que usamos',
    delay: (d: string) => `Necesitamos más información para decidir su solicitud. Decidiremos a más tardar el ${d}.`,
    missing: 'Le pedimos a su médico:',
    extension: (d: string) => `Tomaremos más tiempo para decidir su solicitud. Decidiremos a más tardar el ${d}.`,
    extensionGrievance: (plan: PlanProfile) => `Si no está de acuerdo con esta extensión, puede presentar una queja: ${esc(plan.contacts.grievanceInstructions)} Llame al ${plan.contacts.memberServicesPhone} (TTY ${plan.contacts.tty}).`,
    report: 'El profesional de la segunda opinión envió el informe de consulta. Pida a su médico que lo revise con usted.',
    rightsTitle: 'Sus derechos',
    rights: (plan: PlanProfile) => [
      `Puede pedir una apelación dentro de los 60 días de la fecha de esta carta. Llame al ${plan.contacts.memberServicesPhone} (TTY ${plan.contacts.tty}) o escriba a ${esc(plan.name)}.`,
      `Puede presentar una queja en cualquier momento: ${esc(plan.contacts.grievanceInstructions)}`,
      'Si no está conforme con la decisión de la apelación, o si no decidimos en 30 días, puede pedir una Revisión Médica Independiente o presentar una queja ante el Centro de Ayuda del Departamento de Atención Médica Administrada de California (DMHC): 1-888-466-2219, TDD 1-877-688-9891, www.dmhc.ca.gov.',
      'Puede pedir una Audiencia Estatal con el Departamento de Servicios Sociales de California dentro de los 120 días de la decisión de la apelación: llame al 1-800-743-8525 (TDD 1-800-952-8349).',
      'Puede pedirnos, sin costo, los criterios que usamos para decidir (H&S 1363.5).',
    ],
    contact: (plan: PlanProfile) => `¿Preguntas? Llame al ${plan.contacts.memberServicesPhone} (TTY ${plan.contacts.tty}). Esta carta está disponible en otros idiomas y formatos sin costo.`,
  },
};

/** A notice as HTML (every value escaped): approval (R11), notice of action with "Your Rights" (R10, R17), delay and extension (R9), report (R14). */
export function renderLetter(kind: LetterKind, f: LetterFacts): { title: string; html: string } {
  const t = T[f.language];
  const title = t.title[kind];
  const parts: string[] = [`<p>${esc(f.date)}</p>`, `<p>${t.dear} ${esc(f.memberName)},</p>`];
  if (kind === 'approval') {
    parts.push(`<p>${t.approved(esc(f.professionalName ?? ''))}</p>`);
    if (f.preAuthRef) parts.push(`<p>${t.preauth(esc(f.preAuthRef))}</p>`);
    parts.push(`<p>${t.noCost}</p>`);
    if (f.transportation) parts.push(`<p>${t.transport}</p>`);
  }
  if (kind === 'denial' || kind === 'modification') {
    parts.push(`<p>${kind === 'denial' ? t.denied : t.modified}</p>`);
    if (kind === 'modification' && f.professionalName) parts.push(`<p>${t.approved(esc(f.professionalName))}</p>`);
    parts.push(`<h2>${t.reason}</h2><p>${esc(f.reason)}</p>`);
    parts.push(`<h2>${t.criteria}</h2><p>${esc(f.criteria ?? `${f.plan.name} policy ${f.plan.policy.number}, ${f.plan.policy.title}`)}</p>`);
    parts.push(`<h2>${t.rightsTitle}</h2><ul>${t.rights(f.plan).map((r) => `<li>${r}</li>`).join('')}</ul>`);
  }
  if (kind === 'delay') {
    parts.push(`<p>${t.delay(esc(f.newDueDate))}</p>`);
    if (f.missing?.length) parts.push(`<p>${t.missing}</p><ul>${f.missing.map((m) => `<li>${esc(m)}</li>`).join('')}</ul>`);
  }
  // 42 CFR 438.404(c)(4)(i): the reason for the extension and the right to file a grievance.
  if (kind === 'extension') parts.push(`<p>${t.extension(esc(f.newDueDate))}</p>`, `<h2>${t.reason}</h2><p>${esc(f.reason)}</p>`, `<p>${t.extensionGrievance(f.plan)}</p>`);
  if (kind === 'report') parts.push(`<p>${t.report}</p>${f.reportSummary ? `<blockquote>${esc(f.reportSummary)}</blockquote>` : ''}`);
  parts.push(`<p>${t.contact(f.plan)}</p>`);
  const html = `<!doctype html><html lang="${f.language}"><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${parts.join('\n')}<p>${esc(f.plan.name)}</p></body></html>`;
  return { title, html };
}
