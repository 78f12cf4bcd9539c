import { randomUUID } from 'node:crypto';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, SCREENSHOTS } from './helpers/browser.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { tokenFor } from './helpers/tokens.js';

const CASE_PROFILE = 'https://second-opinion.example.org/fhir/StructureDefinition/second-opinion-task';

interface CaseTask {
  id: string;
  status: string;
  businessStatus?: { coding?: { code?: string }[] };
  restriction?: { period?: { end?: string } };
  focus?: { reference?: string };
}

/**
 * The case actions of the app in Chromium against the server: a UM clinician extends a deadline, the requesting
 * physician and the member withdraw their requests (each confirmed), a card's timeline lists the steps in order,
 * and /app/ opened without a launch says how to launch again.
 */
describe.each(STORE_DRIVERS)('SMART app case actions (Chromium) on $name', (driver) => {
  let server: DemoServer;
  let browser: Browser;
  const store = driver.config();
  const shot = (name: string) => `${SCREENSHOTS}/${driver.name}-actions-${name}.png`;
  /** Words only one request of this run carries, to find its card among the others. */
  const tag = randomUUID().slice(0, 8);
  const extended = `Palpitations at rest, Holter inconclusive ${tag}`;
  const byPhysician = `Shortness of breath on stairs ${tag}`;
  const byMember = `My headaches are getting worse ${tag}`;
  beforeAll(async () => {
    server = await startDemoServer(store);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await driver.cleanup(store);
  });

  const staffToken = () => tokenFor(server, { scope: 'user/*.rs', fhirUser: 'Practitioner/hpsj-md-1', roles: ['medical-director'] });
  /** The case (its Task) whose request carries `details`, as the server has it. */
  const caseWith = async (details: string): Promise<CaseTask> => {
    const auth = { headers: { authorization: `Bearer ${staffToken()}` } };
    const res = await raw(`${server.fhirBase}/Task?patient=member-hpsj-1&_profile=${encodeURIComponent(CASE_PROFILE)}&_include=Task:focus&_count=100`, auth);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const resources = ((res.body as { entry?: { resource: CaseTask & { resourceType: string; reasonCode?: { text?: string }[] } }[] }).entry ?? []).map((e) => e.resource);
    const request = resources.find((r) => r.resourceType === 'ServiceRequest' && r.reasonCode?.[0]?.text?.includes(details));
    const task = resources.find((r) => r.resourceType === 'Task' && r.focus?.reference === `ServiceRequest/${request?.id}`);
    expect(task, `no case for "${details}"`).toBeDefined();
    return task!;
  };
  /** A standalone launch (members and plan staff), signed in as `user`. */
  const signIn = async (user: string, mode: string): Promise<Page> => {
    const p = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    await p.goto(`${server.url}/app/launch.html?iss=${encodeURIComponent(server.fhirBase)}&mode=${mode}`);
    await p.waitForSelector('#user');
    await p.selectOption('#user', user);
    await p.click('button[type=submit]');
    return p;
  };
  /** The EHR launch from the sandbox: Dr. Linh Nguyen (PCP) with Maria Garcia's record open. */
  const physicianLaunch = async (): Promise<Page> => {
    const p = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    await p.goto(`${server.url}/sandbox`);
    await p.selectOption('#user', 'Practitioner/hpsj-pcp-1');
    await p.selectOption('#patient', 'Patient/member-hpsj-1');
    await p.selectOption('#client_id', 'second-opinion-app');
    await p.click('button[type=submit]');
    await p.waitForSelector('#request-form', { timeout: 20_000 });
    return p;
  };
  /** Submits the request form (already showing) with `details`, a cardiology opinion unless another specialty is given. */
  const submit = async (p: Page, details: string, specialty = '207RC0000X') => {
    await p.selectOption('#reason', 'serious-condition');
    await p.fill('#reason-text', details);
    await p.selectOption('#specialty', specialty);
    await p.click('#submit');
    await p.waitForSelector('#submitted', { timeout: 20_000 });
    await p.waitForSelector('#submit:not([disabled])');
  };
  const cardOf = (p: Page, details: string): Locator => p.locator('#cases .card.case', { hasText: details });
  const dueOf = (card: Locator) => card.locator('p', { hasText: 'Decision due' }).locator('time').getAttribute('datetime');

  it('a UM clinician extends the deadline with days and a reason: the server takes it, the card’s due moves later, the page says so, and Extend is not offered again', async () => {
    await submit(await physicianLaunch(), extended);
    const before = await caseWith(extended);
    expect(before.businessStatus?.coding?.[0]?.code).toBe('um-review');

    const um = await signIn('Practitioner/hpsj-um-1', 'staff');
    const card = cardOf(um, extended);
    await card.waitFor({ timeout: 20_000 });
    const dueBefore = await dueOf(card);
    expect(dueBefore).toBe(before.restriction?.period?.end);
    await card.locator('input[id^=days-]').fill('7');
    await card.locator('textarea[id^=reason-]').fill('We are waiting for the cardiologist’s Holter report.');
    await card.locator('button[data-action=extend]').click();
    await um.waitForFunction(() => /Deadline extended/.test(document.getElementById('action-status')?.textContent ?? ''), undefined, { timeout: 20_000 });
    await expect(card.locator('.error').count()).resolves.toBe(0);

    const after = await caseWith(extended);
    expect(Date.parse(after.restriction!.period!.end!)).toBeGreaterThan(Date.parse(dueBefore!));
    expect(after.businessStatus?.coding?.[0]?.code).toBe('um-review');
    // The card, drawn again, shows the new due.
    await expect(dueOf(card)).resolves.toBe(after.restriction?.period?.end);
    // One extension per case (the server refuses a second, 42 CFR 438.210(d)(1)(ii)): Extend is no longer offered; the rest is.
    const offered = await card.locator('.actions button[data-action]').evaluateAll((bs) => bs.map((b) => b.getAttribute('data-action')));
    expect(offered.sort()).toEqual(['approve', 'escalate', 'request-info']);
    await um.screenshot({ path: shot('01-extended'), fullPage: true });
  });

  it('the timeline of a card lists the steps the case went through, in order and with their times (UM review, then the Medical Director after an escalation)', async () => {
    const um = await signIn('Practitioner/hpsj-um-1', 'staff');
    const umCard = cardOf(um, extended);
    await umCard.waitFor({ timeout: 20_000 });
    await umCard.locator('button[data-action=escalate]').click();
    await um.waitForFunction(() => /Medical Director/.test(document.getElementById('action-status')?.textContent ?? ''), undefined, { timeout: 20_000 });
    await expect(caseWith(extended).then((t) => t.businessStatus?.coding?.[0]?.code)).resolves.toBe('medical-director-review');

    const md = await signIn('Practitioner/hpsj-md-1', 'staff');
    const card = cardOf(md, extended);
    await card.waitFor({ timeout: 20_000 });
    await card.locator('summary', { hasText: 'Timeline' }).click();
    const items = card.locator('ol.timeline li');
    await expect.poll(() => items.count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    const steps = await items.allTextContents();
    const um1 = steps.findIndex((s) => s.startsWith('Utilization management review'));
    const md1 = steps.findIndex((s) => s.startsWith('Medical Director review'));
    expect(um1, steps.join(' | ')).toBeGreaterThanOrEqual(0);
    expect(md1, steps.join(' | ')).toBeGreaterThan(um1);
    expect(md1).toBe(steps.length - 1);
    // Each step with when it was reached, in order.
    const times = await items.evaluateAll((lis) => lis.map((li) => li.querySelector('time')?.getAttribute('datetime') ?? ''));
    expect(times.every((t) => !Number.isNaN(Date.parse(t))), times.join(' | ')).toBe(true);
    expect([...times].sort((a, b) => Date.parse(a) - Date.parse(b))).toEqual(times);
    expect(steps.join(' ')).not.toMatch(/\d{4}-\d\d-\d\dT/);
    await md.screenshot({ path: shot('02-timeline'), fullPage: true });
  });

  it('the physician who made a request withdraws it, after confirming: the case ends (withdrawn, Task cancelled), their lists and the member’s view show it withdrawn', async () => {
    const physician = await physicianLaunch();
    await submit(physician, byPhysician);
    const card = cardOf(physician, byPhysician);
    await card.waitFor();
    await card.locator('button[data-action=withdraw]').click();
    await card.locator('input[id^=withdraw-reason-]').fill('The member chose to continue the current treatment.');
    // Nothing is sent before the confirmation.
    await card.locator('.confirm button[data-action=confirm]').waitFor();
    await expect(caseWith(byPhysician).then((t) => t.status)).resolves.toBe('requested');
    await physician.screenshot({ path: shot('03-confirm-withdrawal'), fullPage: true });
    await card.locator('.confirm button[data-action=confirm]').click();
    await physician.waitForFunction(() => /withdrawn/.test(document.getElementById('action-status')?.textContent ?? ''), undefined, { timeout: 20_000 });
    await expect(card.locator('.error').count()).resolves.toBe(0);
    const task = await caseWith(byPhysician);
    expect(task.businessStatus?.coding?.[0]?.code).toBe('withdrawn');
    expect(task.status).toBe('cancelled');
    // Withdrawn cases offer no further withdrawal.
    await expect(card.getAttribute('data-step')).resolves.toBe('withdrawn');
    await expect(card.locator('button[data-action=withdraw]').count()).resolves.toBe(0);
    // The physician's own list (all patients) says so too, not the step it had before.
    await expect(physician.locator('#mine .card.case', { hasText: byPhysician }).getAttribute('data-step')).resolves.toBe('withdrawn');

    const member = await signIn('Patient/member-hpsj-1', 'member');
    const seen = cardOf(member, byPhysician);
    await seen.waitFor({ timeout: 20_000 });
    await expect(seen.getAttribute('data-step')).resolves.toBe('withdrawn');
    await expect(seen.locator('h3').textContent()).resolves.toMatch(/withdrawn/);
    await expect(seen.locator('button[data-action=withdraw]').count()).resolves.toBe(0);
    await member.screenshot({ path: shot('04-member-sees-withdrawn'), fullPage: true });
  });

  it('a member withdraws their own request from the member view, after confirming', async () => {
    const member = await signIn('Patient/member-hpsj-1', 'member');
    await member.waitForSelector('#request-form', { timeout: 20_000 });
    await submit(member, byMember, '2084N0400X');
    const card = cardOf(member, byMember);
    await card.waitFor();
    await card.locator('button[data-action=withdraw]').click();
    await card.locator('.confirm button[data-action=confirm]').waitFor();
    await expect(caseWith(byMember).then((t) => t.status)).resolves.toBe('requested');
    await card.locator('.confirm button[data-action=confirm]').click();
    await member.waitForFunction(() => /withdrawn/.test(document.getElementById('action-status')?.textContent ?? ''), undefined, { timeout: 20_000 });
    await expect(card.locator('.error').count()).resolves.toBe(0);
    const task = await caseWith(byMember);
    expect(task.businessStatus?.coding?.[0]?.code).toBe('withdrawn');
    expect(task.status).toBe('cancelled');
    await expect(card.getAttribute('data-step')).resolves.toBe('withdrawn');
    await member.screenshot({ path: shot('05-member-withdrew'), fullPage: true });
  });

  it('/app/ opened without a launch says, in plain words, to launch again, links to the sandbox and leaves no "Loading…"', async () => {
    const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    await page.goto(`${server.url}/app/`);
    const error = page.locator('#app .error');
    await error.waitFor({ timeout: 20_000 });
    await expect(error.textContent()).resolves.toMatch(/launch the app again/i);
    await expect(error.textContent()).resolves.not.toMatch(/state|Error:|undefined/);
    const link = error.locator('a');
    await expect(link.getAttribute('href')).resolves.toBe('/sandbox');
    await expect(page.textContent('main')).resolves.not.toMatch(/Loading/);
    await page.screenshot({ path: shot('06-no-launch'), fullPage: true });
    await link.click();
    await page.waitForSelector('#patient');
  });
});
