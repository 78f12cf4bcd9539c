import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, SCREENSHOTS } from './helpers/browser.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { tokenFor } from './helpers/tokens.js';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** The SMART app in real Chromium: EHR launch from /sandbox, request, UM decision, letters. */
describe.each(STORE_DRIVERS)('SMART app end to end (Chromium) on $name', (driver) => {
  let server: DemoServer;
  let browser: Browser;
  const store = driver.config();
  const shot = (name: string) => `${SCREENSHOTS}/${driver.name}-${name}.png`;
  beforeAll(async () => {
    server = await startDemoServer(store);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await driver.cleanup(store);
  });
  /** A standalone launch of the app (members and plan staff), signing in as `user`. */
  const signIn = async (user: string, mode: string, extra = '') => {
    const p = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    await p.goto(`${server.url}/app/launch.html?iss=${encodeURIComponent(server.fhirBase)}&mode=${mode}${extra}`);
    await p.waitForSelector('#user');
    await p.selectOption('#user', user);
    await p.click('button[type=submit]');
    return p;
  };

  it('a physician launches from the sandbox, checks authorization and submits out of network; a UM clinician escalates and the Medical Director approves; the report is posted; the physician reads it and the member sees the letter and their rights (R20)', async () => {
    // Scripts run under the server's Content-Security-Policy; this page bypasses it only to inject axe-core below.
    expect((await fetch(`${server.url}/app/index.html`)).headers.get('content-security-policy')).toContain("script-src 'self'");
    const page = await browser.newPage({ viewport: { width: 1024, height: 768 }, bypassCSP: true });
    await page.goto(`${server.url}/sandbox`);
    await page.selectOption('#user', 'Practitioner/hpsj-pcp-1');
    await page.selectOption('#patient', 'Patient/member-hpsj-1');
    await page.selectOption('#client_id', 'second-opinion-app');
    await page.screenshot({ path: shot('01-sandbox') });
    await page.click('button[type=submit]');
    await page.waitForSelector('#request-form', { timeout: 20_000 });
    await expect(page.textContent('#banner')).resolves.toContain('Maria Garcia');
    await page.selectOption('#reason', 'surgery-necessity');
    await page.selectOption('#specialty', '207RC0000X');
    // The PCP asks about the cardiologist's recommendation: a cardiology opinion (R6; on the PCP's own care it would be a PCP's, R5).
    await page.selectOption('#care-questioned', 'PractitionerRole/role-hpsj-card-1');
    await page.fill('#performer', 'PractitionerRole/role-oon-card-1');
    await page.check('#transportation');
    await page.check('#support-0');
    await expect(page.textContent('#banner')).resolves.toMatch(/Dr\. Linh Nguyen.*hpsj-ipa-a/);
    // Keyboard only: from the transportation checkbox, Tab reaches the language and then "Check authorization".
    await page.focus('#language');
    await page.keyboard.press('Tab');
    await expect(page.evaluate(() => document.activeElement?.id)).resolves.toBe('check');
    await page.keyboard.press('Enter');
    await page.waitForSelector('text=Authorization needed');
    await page.screenshot({ path: shot('02-authorization-check') });
    const axe = await page.evaluate(async (source) => {
      // eslint-disable-next-line no-eval
      (0, eval)(source);
      const result = await (window as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string }[] }> } }).axe.run();
      return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id);
    }, axeSource);
    expect(axe).toEqual([]);
    await page.click('#submit');
    await page.waitForSelector('#submitted');
    await expect(page.textContent('#submitted')).resolves.toContain('um-review');
    await page.screenshot({ path: shot('03-submitted') });

    // A UM clinician escalates; the physician reviewer (Medical Director) approves.
    const um = await signIn('Practitioner/hpsj-um-1', 'staff');
    await um.waitForSelector('button[data-action=escalate]', { timeout: 20_000 });
    await um.waitForSelector('figure svg[role=img]');
    // R19, BSP D.X: the committee figures code each reason category's outcomes; the request just made is among them.
    await expect(um.locator('table[aria-label^="Outcomes by reason"] th[scope=row]').allTextContents()).resolves.toContain('surgery-necessity');
    await um.screenshot({ path: shot('04-um-queue'), fullPage: true });
    // The UM clinician asks for information; the physician answers in the app with a document.
    await um.fill('.card input[id^=what-]', 'Latest echocardiogram report');
    await um.locator('button[data-action=request-info]').first().click();
    await um.waitForSelector('text=info-requested');
    await page.reload();
    await page.waitForSelector('button[data-action=answer-info]');
    await page.setInputFiles('input[type=file]', { name: 'echo-2026-11.txt', mimeType: 'text/plain', buffer: Buffer.from('Echocardiogram: moderate aortic stenosis') });
    await page.click('button[data-action=answer-info]');
    await page.waitForSelector('text=info-received');
    await page.screenshot({ path: shot('04b-information-answered') });
    await um.reload();
    await um.waitForSelector('text=info-received', { timeout: 20_000 });
    await um.locator('button[data-action=escalate]').first().click();
    await um.waitForSelector('text=medical-director-review');
    const md = await signIn('Practitioner/hpsj-md-1', 'staff');
    await md.waitForSelector('text=medical-director-review', { timeout: 20_000 });
    const mdCard = md.locator('.card', { hasText: 'medical-director-review' });
    // Naming another professional than the one requested is a modification (R10): the app shows the refusal.
    await mdCard.locator('select[id^=professional-]').selectOption('PractitionerRole/role-hpsj-card-2');
    await mdCard.locator('button[data-action=approve]').click();
    await md.waitForSelector('text=use $modify', { timeout: 20_000 });
    await mdCard.locator('select[id^=professional-]').selectOption('PractitionerRole/role-oon-card-1');
    await mdCard.locator('button[data-action=approve]').click();
    // The case leaves the queue (the committee figures below it still name the step as an outcome).
    await md.waitForFunction(() => ![...document.querySelectorAll('.card h3')].some((h) => h.textContent?.includes('medical-director-review')));
    await md.screenshot({ path: shot('05-decided') });

    // The authorized second-opinion professional posts the consultation report in the app.
    const consultant = await signIn('Practitioner/oon-card-1', 'consultant');
    await consultant.waitForSelector('button[data-action=post-report]', { timeout: 20_000 });
    await consultant.fill('.card textarea', 'Second opinion: valve repair preferred; recommend transesophageal echocardiogram');
    await consultant.click('button[data-action=post-report]');
    await consultant.waitForFunction(() => !document.querySelector('button[data-action=post-report]'));
    await consultant.screenshot({ path: shot('06-report-posted') });

    await page.reload();
    await page.waitForSelector('details');
    await page.locator('summary', { hasText: 'Letters and reports' }).first().click();
    await page.waitForSelector('article h4');
    const titles = await page.locator('article h4').allTextContents();
    expect(titles).toEqual(expect.arrayContaining([expect.stringMatching(/^Consultation report for Maria Garcia, /), expect.stringMatching(/approved|aprobada/)]));
    // The treating physician also sees the copy the provider was sent (R10); the member's view leaves it out.
    expect(titles).toEqual(expect.arrayContaining([expect.stringMatching(/^(Copy|Copia)/)]));
    await page.screenshot({ path: shot('07-physician-reads-report'), fullPage: true });

    // The member (standalone launch) sees the case and the letter.
    const member = await signIn('Patient/member-hpsj-1', 'member');
    await member.waitForSelector('details', { timeout: 20_000 });
    await expect(member.textContent('main')).resolves.toMatch(/Sus derechos/);
    await member.locator('summary', { hasText: 'Letters and reports' }).first().click();
    await member.waitForSelector('article h4');
    await expect(member.locator('article h4').allTextContents()).resolves.toEqual(expect.arrayContaining([expect.stringMatching(/aprobada|approved/)]));
    await expect(member.locator('article h4').allTextContents()).resolves.not.toEqual(expect.arrayContaining([expect.stringMatching(/^(Copy|Copia)/)]));
    await member.screenshot({ path: shot('08-member-letters'), fullPage: true });
    // The member can ask for a second opinion too.
    await member.selectOption('#reason', 'persistent-concerns');
    await member.click('#submit');
    await member.waitForSelector('#submitted');
  });

  it('R17 PHC VI.E, 42 CFR 438.406(b)(2): a member files a grievance (their PCP did not grant the request); the Grievance Coordinator sees it with its dues and acknowledges it; a physician of the plan finds it among the clinical grievances and resolves it; the member reads the resolution', async () => {
    const member = await signIn('Patient/member-phc-1', 'member');
    await member.waitForSelector('#grievance-form', { timeout: 20_000 });
    await member.selectOption('#grievance-category', 'pcp-not-granted');
    await member.selectOption('#grievance-case', '');
    await member.fill('#grievance-text', 'My doctor said no to a second opinion about my treatment.');
    await member.click('#file-grievance');
    await member.waitForSelector('#grievance-filed');
    await member.waitForSelector('.grievance >> text=received');

    const coordinator = await signIn('Practitioner/phc-gc-1', 'grievances');
    const card = coordinator.locator('.grievance', { hasText: 'My doctor said no to a second opinion' });
    await card.waitFor({ timeout: 20_000 });
    await expect(card.textContent()).resolves.toMatch(/Acknowledgment due .*Resolution due/s);
    await card.locator('button[data-action=acknowledge-grievance]').click();
    // Clinical: the coordinator does not resolve it; the plan's physician does.
    await card.locator('.awaiting-physician').waitFor();
    await expect(card.textContent()).resolves.toContain('acknowledged');
    await expect(card.locator('button[data-action=resolve-grievance]').count()).resolves.toBe(0);
    await coordinator.screenshot({ path: shot('10-grievance-desk'), fullPage: true });

    const physician = await signIn('Practitioner/phc-md-1', 'grievances');
    await physician.waitForSelector('text=Clinical grievances to resolve', { timeout: 20_000 });
    const clinical = physician.locator('.grievance', { hasText: 'My doctor said no to a second opinion' });
    await clinical.locator('select[id^=outcome-]').selectOption('upheld');
    await clinical.locator('textarea[id^=resolution-]').fill('We reminded your PCP of your right to a second opinion; the request was submitted for you.');
    await clinical.locator('button[data-action=resolve-grievance]').click();
    // Resolved, it leaves the desk of open grievances.
    await clinical.waitFor({ state: 'detached' });
    await physician.screenshot({ path: shot('10b-physician-grievances'), fullPage: true });

    await member.reload();
    const mine = member.locator('.grievance', { hasText: 'My doctor said no to a second opinion' });
    await mine.waitFor({ timeout: 20_000 });
    await expect(mine.locator('h3').textContent()).resolves.toContain('resolved');
    await mine.locator('details').click();
    await mine.locator('article h4').first().waitFor();
    await expect(mine.locator('article h4').allTextContents()).resolves.toEqual(expect.arrayContaining(['We received your grievance', 'The decision on your grievance']));
    await member.screenshot({ path: shot('11-member-grievance-resolved'), fullPage: true });
  });

  it('R17: the grievance desk pages through the open grievances with the server’s next and previous links, earliest resolution due first across the pages', async () => {
    const memberToken = tokenFor(server, { scope: 'launch/patient patient/*.rs patient/Task.c', patient: 'member-phc-2', fhirUser: 'Patient/member-phc-2', roles: ['member'] });
    const fileOne = async (i: number, expedited: boolean) => {
      const parameter = [{ name: 'category', valueCode: 'deadline-missed' }, { name: 'description', valueString: `Paging grievance ${i}` }, { name: 'expedited', valueBoolean: expedited }];
      const res = await raw(`${server.fhirBase}/Task/$file-grievance`, { method: 'POST', headers: { authorization: `Bearer ${memberToken}` }, json: { resourceType: 'Parameters', parameter } });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    };
    // Filed last, the urgent one is due first (72 hours against 30 days).
    for (let i = 1; i <= 5; i++) await fileOne(i, false);
    await fileOne(6, true);
    const coordinatorToken = tokenFor(server, { scope: 'user/*.rs', fhirUser: 'Practitioner/phc-gc-1', roles: ['grievance-coordinator'] });
    const open = await raw(`${server.fhirBase}/Task?code=second-opinion-grievance&status=requested,in-progress&_summary=count`, { headers: { authorization: `Bearer ${coordinatorToken}` } });
    const total = (open.body as { total: number }).total;
    expect(total).toBeGreaterThan(3);

    const desk = await signIn('Practitioner/phc-gc-1', 'grievances', '&pageSize=3');
    await desk.waitForSelector('#grievances .grievance', { timeout: 20_000 });
    // Each card shows its resolution due in local time; the <time> element keeps the instant.
    const dues = () => desk.$$eval('#grievances .grievance', (cards) => cards.map((card) => [...card.querySelectorAll('p')].find((p) => p.textContent?.startsWith('Resolution due'))?.querySelector('time')?.getAttribute('datetime') ?? ''));
    const pageText = () => desk.textContent('#grievances-page');
    const firstPage = await dues();
    expect(firstPage).toHaveLength(3);
    await expect(desk.locator('#grievances .grievance').first().textContent()).resolves.toContain('Paging grievance 6');
    await expect(desk.isDisabled('#grievances-previous')).resolves.toBe(true);
    const seen = [...firstPage];
    for (let page = 2; !(await desk.isDisabled('#grievances-next')); page++) {
      await desk.click('#grievances-next');
      await desk.waitForFunction((n) => document.getElementById('grievances-page')?.textContent === `Page ${n}`, page);
      seen.push(...(await dues()));
    }
    expect(seen).toHaveLength(total);
    expect(seen).toEqual([...seen].sort((a, b) => Date.parse(a) - Date.parse(b)));
    await desk.screenshot({ path: shot('12-grievance-desk-last-page'), fullPage: true });
    // Back to the first page, as it was.
    while (!(await desk.isDisabled('#grievances-previous'))) {
      const before = await pageText();
      await desk.click('#grievances-previous');
      await desk.waitForFunction((text) => document.getElementById('grievances-page')?.textContent !== text, before);
    }
    await expect(pageText()).resolves.toBe('Page 1');
    await expect(dues()).resolves.toEqual(firstPage);
  });

  it('works at phone width', async () => {
    const page = await browser.newPage({ viewport: { width: 375, height: 740 } });
    await page.goto(`${server.url}/sandbox`);
    await page.selectOption('#user', 'Practitioner/phc-pcp-1');
    await page.selectOption('#patient', 'Patient/member-phc-1');
    await page.click('button[type=submit]');
    await page.waitForSelector('#request-form', { timeout: 20_000 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: shot('09-phone'), fullPage: true });
  });
});
