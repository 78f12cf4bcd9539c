import { describe, expect, it } from 'vitest';
import { letterLanguage, renderLetter } from './letters.js';
import { planById } from './plans.js';

const plan = planById('phc')!;

describe('notices', () => {
  it('R10, R17 PHC VI.F: a denial gives the reason, the criteria, appeal and grievance rights, DMHC and State Hearing routes', () => {
    const { html } = renderLetter('denial', { plan, language: 'en', audience: 'member', memberName: 'Alice <Thompson>', date: '2026-11-20', reason: 'Not a covered reason', criteria: 'MPUP3078 VI.A' });
    expect(html).toContain('Not a covered reason');
    expect(html).toContain('MPUP3078 VI.A');
    expect(html).toMatch(/appeal within 60 days/);
    expect(html).toMatch(/grievance/);
    expect(html).toContain('1-888-466-2219');
    expect(html).toMatch(/State Hearing/);
    expect(html).toContain('Alice &lt;Thompson&gt;');
  });
  it('R10, R17 H&S 1368.02(b): every notice offering the grievance process and every grievance response carries the DMHC statement, numbers and plan telephone in bold; an approval does not', () => {
    const facts = { plan, audience: 'member' as const, memberName: 'A', date: 'd', reason: 'r', newDueDate: 'n', grievanceOutcome: 'not-upheld' as const, grievance: { resolutionDueDate: 'n', expedited: false, statement: 's' } };
    for (const kind of ['denial', 'modification', 'extension', 'grievance-urgent', 'grievance-acknowledgment', 'grievance-resolution'] as const) {
      const { html: en } = renderLetter(kind, { ...facts, language: 'en' });
      expect(en, kind).toContain('The California Department of Managed Health Care is responsible for regulating health care service plans.');
      for (const bold of [plan.contacts.memberServicesPhone, '1-888-466-2219', '1-877-688-9891', 'www.dmhc.ca.gov']) expect(en, `${kind} ${bold}`).toContain(`<strong>${bold}</strong>`);
      const { html: es } = renderLetter(kind, { ...facts, language: 'es' });
      expect(es, kind).toContain('El Departamento de Atención Médica Administrada de California es responsable de regular los planes');
    }
    for (const kind of ['approval', 'delay', 'report'] as const) expect(renderLetter(kind, { ...facts, language: 'en' }).html, kind).not.toContain('is responsible for regulating');
  });
  it('R10: Spanish for a Spanish-speaking member', () => {
    expect(letterLanguage(plan, 'es')).toBe('es');
    const { html } = renderLetter('denial', { plan, language: 'es', audience: 'member', memberName: 'Javier', date: '2026-11-20', reason: 'x' });
    expect(html).toContain('Sus derechos');
    expect(html).toContain('lang="es"');
  });
  it('R11/R12/R13: an approval names the professional, the authorization, no cost and transportation', () => {
    const { html } = renderLetter('approval', { plan, language: 'en', audience: 'member', memberName: 'A', date: 'd', professionalName: 'Dr. Hanna Schmidt', preAuthRef: 'PA-1', transportation: true });
    expect(html).toContain('Dr. Hanna Schmidt');
    expect(html).toContain('PA-1');
    expect(html).toMatch(/pay nothing/);
    expect(html).toMatch(/transportation/);
  });
  it('R9 42 CFR 438.404(c)(4): an extension notice gives the reason, the new date and the right to file a grievance', () => {
    for (const language of ['en', 'es'] as const) {
      const { title, html } = renderLetter('extension', { plan, language, audience: 'member', memberName: 'A', date: 'd', newDueDate: '2026-12-22', reason: 'Awaiting <echo> results' });
      expect(title).toMatch(/more time|más tiempo/);
      expect(html).toContain('2026-12-22');
      expect(html).toContain('Awaiting &lt;echo&gt; results');
      expect(html).toMatch(/grievance|queja/);
      expect(html).toContain('Grievance Coordinator');
    }
  });
  it('R9 H&S 1367.01(h)(4): a delay notice names the information requested and not yet received', () => {
    const { html } = renderLetter('delay', { plan, language: 'en', audience: 'member', memberName: 'A', date: 'd', newDueDate: '2026-12-08', missing: ['Recent MRI report', 'Lab <results>'] });
    expect(html).toContain('<li>Recent MRI report</li>');
    expect(html).toContain('<li>Lab &lt;results&gt;</li>');
  });
  it('R10 BSP D.V, H&S 1367.01(h)(3): the provider copy speaks of "your patient", with the facts, reasons, criteria and rights the member was told of, in English and Spanish', () => {
    const wording = {
      en: { patient: 'your patient', memberOnly: /Dear |We denied your request|You pay nothing/, rights: 'The rights we told your patient of', noCost: 'Your patient pays nothing' },
      es: { patient: 'su paciente', memberOnly: /Estimado|Negamos su solicitud|Usted no paga/, rights: 'Los derechos que le informamos a su paciente', noCost: 'Su paciente no paga nada' },
    } as const;
    for (const language of ['en', 'es'] as const) {
      const w = wording[language];
      const facts = { plan, language, memberName: 'Alice Thompson', date: '2026-11-20', reason: 'Not shown to be needed', criteria: 'MPUP3078 VI.A' };
      const member = renderLetter('denial', { ...facts, audience: 'member' });
      const copy = renderLetter('denial', { ...facts, audience: 'provider' });
      expect(copy.title).not.toBe(member.title);
      expect(copy.html).toContain(w.patient);
      expect(copy.html).not.toMatch(w.memberOnly);
      for (const fact of ['Alice Thompson', '2026-11-20', 'Not shown to be needed', 'MPUP3078 VI.A', w.rights]) expect(copy.html).toContain(fact);
      const rights = (html: string) => /<ul>.*<\/ul>/s.exec(html)?.[0];
      expect(rights(copy.html)).toBe(rights(member.html));
      const approval = renderLetter('approval', { ...facts, audience: 'provider', professionalName: 'Dr. Hanna Schmidt', preAuthRef: 'PA-1', transportation: true }).html;
      for (const fact of ['Dr. Hanna Schmidt', 'PA-1', w.noCost]) expect(approval).toContain(fact);
      expect(approval).not.toMatch(w.memberOnly);
    }
  });
  it('R10: a letter that cannot name the professional says who gives the opinion in the letter\'s language', () => {
    const es = renderLetter('approval', { plan, language: 'es', audience: 'member', memberName: 'Javier', date: 'd' }).html;
    expect(es).toContain('El profesional que la dará es <strong>un profesional calificado de nuestra red</strong>.');
    expect(es).not.toMatch(/qualified/);
  });
});
