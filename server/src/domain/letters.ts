import type { GrievanceOutcome } from './grievance.js';
import { esc } from './html.js';
import { type Audience, type Language, type LetterKind, WORDING } from './letterWording.js';
import type { PlanProfile } from './plans.js';

export type { Audience, Language, LetterKind } from './letterWording.js';

export interface LetterFacts {
  plan: PlanProfile;
  language: Language;
  audience: Audience;
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
  /** R17: the grievance filed urgent or acknowledged: the member's words, when its resolution is due, whether it is urgent. */
  grievance?: { statement: string; resolutionDueDate: string; expedited: boolean };
  /** R17: how the grievance was resolved (its reasons are `reason`). */
  grievanceOutcome?: GrievanceOutcome;
}

/**
 * The first of the languages asked for (the request's choice, then the member's) that the plan has letters in;
 * English otherwise (R10).
 */
export function letterLanguage(plan: PlanProfile, ...wanted: (string | undefined)[]): Language {
  for (const choice of wanted) {
    const code = choice?.slice(0, 2).toLowerCase();
    if (code === 'en') return 'en';
    if (code === 'es' && plan.languages.includes('es')) return 'es';
  }
  return 'en';
}

/** H&S 1368.02(b): the notices that offer the grievance process (R10, R9's extension) and the responses to a grievance (R17). */
const GRIEVANCE_PROCESS_NOTICES: ReadonlySet<LetterKind> = new Set(['denial', 'modification', 'extension', 'grievance-urgent', 'grievance-acknowledgment', 'grievance-resolution']);

/** A notice as HTML (every value escaped), worded to the member or, as a copy, to a provider: approval (R11), notice of action with "Your Rights" (R10, R17), delay and extension (R9), report (R14), urgent grievance notice, grievance acknowledgment and resolution (R17). */
export function renderLetter(kind: LetterKind, f: LetterFacts): { title: string; html: string } {
  const t = WORDING[f.language][f.audience];
  const title = t.title[kind];
  const parts: string[] = [`<p>${esc(f.date)}</p>`, `<p>${t.greeting(esc(f.memberName))}</p>`];
  if (kind === 'approval') {
    parts.push(`<p>${t.approved(f.professionalName ? esc(f.professionalName) : t.qualifiedProfessional)}</p>`);
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
  // H&S 1368.01(b): at filing, an urgent grievance's member is told at once of the right to notify the DMHC.
  if (kind === 'grievance-urgent' && f.grievance) {
    parts.push(`<p>${t.grievanceUrgent(esc(f.grievance.resolutionDueDate))}</p>`, `<p><strong>${t.grievanceDmhcNow}</strong></p>`);
    parts.push(`<h2>${t.grievanceStatement}</h2><blockquote>${esc(f.grievance.statement)}</blockquote>`);
  }
  if (kind === 'grievance-acknowledgment' && f.grievance) {
    parts.push(`<p>${t.grievanceReceived(esc(f.grievance.resolutionDueDate))}</p>`);
    if (f.grievance.expedited) parts.push(`<p>${t.grievanceExpedited}</p>`);
    parts.push(`<h2>${t.grievanceStatement}</h2><blockquote>${esc(f.grievance.statement)}</blockquote>`);
  }
  if (kind === 'grievance-resolution' && f.grievanceOutcome) {
    parts.push(`<p>${t.grievanceOutcome[f.grievanceOutcome]}</p>`, `<h2>${t.reason}</h2><p>${esc(f.reason)}</p>`);
    parts.push(`<h2>${t.rightsTitle}</h2><ul>${t.grievanceRights(f.plan).map((r) => `<li>${r}</li>`).join('')}</ul>`);
  }
  if (GRIEVANCE_PROCESS_NOTICES.has(kind)) parts.push(`<p class="dmhc-statement" style="font-size:12pt">${t.dmhcStatement(f.plan)}</p>`);
  parts.push(`<p>${t.contact(f.plan)}</p>`);
  const html = `<!doctype html><html lang="${f.language}"><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${parts.join('\n')}<p>${esc(f.plan.name)}</p></body></html>`;
  return { title, html };
}
