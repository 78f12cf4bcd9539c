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
});
