import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, SCREENSHOTS } from './helpers/browser.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { raw } from './helpers/fhir.js';
import { STORE_DRIVERS } from './helpers/stores.js';
import { tokenFor } from './helpers/tokens.js';

const CASE_PROFILE = 'https://second-opinion.example.org/fhir/StructureDefinition/second-opinion-task';

/**
 * The review queue in Chromium: one request per submit however often it is clicked, the physician's own requests,
 * what a queue card tells the reviewer, the actions a step allows each role, readable server errors, and a denial
 * that needs its reason and a confirmation.
 */
describe.each(STORE_DRIVERS)('SMART app review queue (Chromium) on $name', (driver) => {
  let server: DemoServer;
  let browser: Browser;
  const store = driver.config();
  const shot = (name: string) => `${SCREENSHOTS}/${driver.name}-review-${name}.png`;
  /** Words only this run's request carries, to find its card among the others. */
  const details = `Chest pain on exertion despite treatment ${randomUUID().slice(0, 8)}`;
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
  /** The member's cases as the server has them (their Tasks). */
  const casesOfMember = async () => {
    const res = await raw(`${server.fhirBase}/Task?patient=member-hpsj-1&_profile=${encodeURIComponent(CASE_PROFILE)}&_count=100`, { headers: { authorization: `Bearer ${staffToken()}` } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return ((res.body as { entry?: { resource: { id: string; focus?: { reference?: string }; businessStatus?: { coding?: { code?: string }[] } } }[] }).entry ?? []).map((e) => e.resource);
  };
  const signIn = async (user: string, mode: string): Promise<Page> => {
    const p = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    await p.goto(`${server.url}/app/launch.html?iss=${encodeURIComponent(server.fhirBase)}&mode=${mode}`);
    await p.waitForSelector('#user');
    await p.selectOption('#user', user);
    await p.click('button[type=submit]');
    return p;
  };
  const ourCard = (p: Page) => p.locator('#cases .card.case', { hasText: details });
  const offered = async (p: Page) => (await ourCard(p).locator('.actions button[data-action]').evaluateAll((bs) => bs.map((b) => b.getAttribute('data-action')))).sort();

  it('a double click on Submit request makes one case, and the physician finds it among their own requests (all patients)', async () => {
    const before = (await casesOfMember()).length;
    const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    await page.goto(`${server.url}/sandbox`);
    await page.selectOption('#user', 'Practitioner/hpsj-pcp-1');
    await page.selectOption('#patient', 'Patient/member-hpsj-1');
    await page.selectOption('#client_id', 'second-opinion-app');
    await page.click('button[type=submit]');
    await page.waitForSelector('#request-form', { timeout: 20_000 });
    await page.selectOption('#reason', 'serious-condition');
    await page.fill('#reason-text', details);
    await page.selectOption('#specialty', '207RC0000X');
    await page.fill('#performer', 'PractitionerRole/role-oon-card-1');
    await page.dblclick('#submit');
    await page.waitForSelector('#submitted');
    // Enabled again once the lists are read again.
    await page.waitForSelector('#submit:not([disabled])');
    expect((await casesOfMember()).length).toBe(before + 1);
    // R1: the request made as Practitioner/hpsj-pcp-1 is listed among theirs.
    await expect(page.locator('#mine .card', { hasText: details }).count()).resolves.toBe(1);
    // Deadlines in local time, not as UTC ISO strings.
    await expect(page.textContent('#submitted')).resolves.not.toMatch(/\d{4}-\d\d-\d\dT/);
    await page.screenshot({ path: shot('01-submitted'), fullPage: true });
  });

  it('the UM clinician’s card tells who the member is, who asked, what and why, and offers only what a UM clinician may do at UM review', async () => {
    const um = await signIn('Practitioner/hpsj-um-1', 'staff');
    const card = ourCard(um);
    await card.waitFor({ timeout: 20_000 });
    const text = (await card.textContent()) ?? '';
    expect(text).toContain('Maria Garcia');
    expect(text).toMatch(/member ID \S+/);
    expect(text).toContain('Dr. Linh Nguyen');
    expect(text).toContain('Cardiology');
    expect(text).toContain('Dr. Eva Lindqvist');
    expect(text).toMatch(/Out of network; authorization needed/);
    expect(text).not.toMatch(/\d{4}-\d\d-\d\dT\d\d:\d\d/);
    // BSP D.V-VI: a UM clinician approves, asks for information, escalates or extends; denials are the Medical Director's.
    await expect(offered(um)).resolves.toEqual(['approve', 'escalate', 'extend', 'request-info']);
    await um.screenshot({ path: shot('02-um-card'), fullPage: true });
  });

  it('the Medical Director is offered what the step allows them; a server refusal reads as its diagnostics; a denial needs a reason and a confirmation', async () => {
    const md = await signIn('Practitioner/hpsj-md-1', 'staff');
    const card = ourCard(md);
    await card.waitFor({ timeout: 20_000 });
    await expect(offered(md)).resolves.toEqual(['approve', 'deny', 'extend', 'modify', 'request-info']);

    // R10: approving another professional than the one requested is refused; the page says why, in words.
    await card.locator('select[id^=professional-]').selectOption('other');
    await card.locator('input[id^=professional-id-]').fill('PractitionerRole/role-hpsj-card-2');
    await card.locator('button[data-action=approve]').click();
    const error = card.locator('.error');
    await error.waitFor();
    const message = (await error.textContent()) ?? '';
    expect(message).toMatch(/\$modify/);
    expect(message).not.toMatch(/OperationOutcome|resourceType|URL:|\{/);
    await md.screenshot({ path: shot('03-readable-error'), fullPage: true });

    // No reason: refused in the page, nothing sent.
    await card.locator('button[data-action=deny]').click();
    await expect(card.locator('.field-error').textContent()).resolves.toMatch(/reason/i);
    await expect(card.locator('.error').count()).resolves.toBe(0);
    const taskId = await card.locator('.actions select[id^=professional-]').getAttribute('id').then((id) => id!.replace('professional-', ''));
    const step = async () => (await casesOfMember()).find((t) => t.id === taskId)?.businessStatus?.coding?.[0]?.code;
    await expect(step()).resolves.toBe('um-review');

    // With a reason, the page asks first; only the confirmation sends the denial.
    await card.locator('textarea[id^=reason-]').fill('The records show the current treatment is working; a second cardiology opinion is not needed now.');
    await card.locator('input[id^=criteria-]').fill('Plan second-opinion policy III.B');
    await card.locator('button[data-action=deny]').click();
    await card.locator('.confirm button[data-action=confirm]').waitFor();
    await expect(card.locator('.confirm').textContent()).resolves.toContain('a second cardiology opinion is not needed now');
    await expect(step()).resolves.toBe('um-review');
    await md.screenshot({ path: shot('04-confirm-denial'), fullPage: true });
    await card.locator('.confirm button[data-action=confirm]').click();
    await card.waitFor({ state: 'detached', timeout: 20_000 });
    await expect(md.textContent('#action-status')).resolves.toMatch(/Denied/);
    await expect(step()).resolves.toBe('denied');
  });
});
