import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, SCREENSHOTS } from './helpers/browser.js';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** The SMART app in real Chromium: EHR launch from /sandbox, request, UM decision, letters. */
describe('SMART app end to end (Chromium)', () => {
  let server: DemoServer;
  let browser: Browser;
  beforeAll(async () => {
    server = await startDemoServer();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('a physician launches from the sandbox EHR, checks authorization and submits an out-of-network request; a UM clinician approves it; the physician sees the letters', async () => {
    const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    await page.goto(`${server.url}/sandbox`);
    await page.selectOption('#user', 'Practitioner/hpsj-pcp-1');
    await page.selectOption('#patient', 'Patient/member-hpsj-1');
    await page.selectOption('#client_id', 'second-opinion-app');
    await page.screenshot({ path: `${SCREENSHOTS}/01-sandbox.png` });
    await page.click('button[type=submit]');
    await page.waitForSelector('#request-form', { timeout: 20_000 });
    await expect(page.textContent('#banner')).resolves.toContain('Maria Garcia');
    await page.selectOption('#reason', 'surgery-necessity');
    await page.selectOption('#specialty', '207RC0000X');
    await page.fill('#performer', 'PractitionerRole/role-oon-card-1');
    await page.check('#transportation');
    await page.click('#check');
    await page.waitForSelector('text=Authorization needed');
    await page.screenshot({ path: `${SCREENSHOTS}/02-authorization-check.png` });
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
    await page.screenshot({ path: `${SCREENSHOTS}/03-submitted.png` });

    const staff = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    await staff.goto(`${server.url}/app/launch.html?iss=${encodeURIComponent(server.fhirBase)}&mode=staff`);
    await staff.waitForSelector('#user');
    await staff.selectOption('#user', 'Practitioner/hpsj-um-1');
    await staff.click('button[type=submit]');
    await staff.waitForSelector('button[data-action=approve]', { timeout: 20_000 });
    await staff.screenshot({ path: `${SCREENSHOTS}/04-um-queue.png` });
    const queueBefore = await staff.locator('button[data-action=approve]').count();
    await staff.locator('button[data-action=approve]').first().click();
    await staff.waitForFunction((n) => document.querySelectorAll('button[data-action=approve]').length < n, queueBefore);

    await page.reload();
    await page.waitForSelector('details');
    await page.locator('details').first().click();
    await page.waitForSelector('article h4');
    await expect(page.locator('article h4').allTextContents()).resolves.toEqual(expect.arrayContaining([expect.stringMatching(/approved|aprobada/)]));
    await page.screenshot({ path: `${SCREENSHOTS}/05-letters.png`, fullPage: true });
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
    await page.screenshot({ path: `${SCREENSHOTS}/06-phone.png`, fullPage: true });
  });
});
