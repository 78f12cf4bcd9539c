import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DemoServer, startDemoServer } from './helpers/demoServer.js';
import { follow, startSmartApp } from './helpers/smartApp.js';

/** The SMART App Launch flows, with fhirclient (Node entry) as the client, against the running server. */
describe('SMART App Launch with fhirclient', () => {
  let server: DemoServer;
  let app: Awaited<ReturnType<typeof startSmartApp>>;
  const registration = { clientId: '' };

  beforeAll(async () => {
    server = await startDemoServer();
    app = await startSmartApp(registration, 'launch openid fhirUser patient/*.rs user/*.rs offline_access');
    // Register the test app like any developer would (dynamic registration is open in demo mode).
    const reg = await fetch(`${server.url}/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'fhirclient test app', redirect_uris: [`${app.url}/redirect`], launch_uri: `${app.url}/launch`, token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] }),
    });
    expect(reg.status).toBe(201);
    registration.clientId = ((await reg.json()) as { client_id: string }).client_id;
  });
  afterAll(async () => {
    await app?.close();
    await server?.close();
  });

  it('EHR launch from the sandbox: launch bound to patient, user and app, PKCE, id_token with fhirUser, refresh token', async () => {
    // The sandbox launches the registered test app: a launch id is honoured only for the app it launched, once.
    const launch = await fetch(`${server.url}/sandbox/launch`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ user: 'Practitioner/hpsj-pcp-1', patient: 'Patient/member-hpsj-1', client_id: registration.clientId }),
      redirect: 'manual',
    });
    const appLaunch = new URL(launch.headers.get('location')!);
    expect(`${appLaunch.origin}${appLaunch.pathname}`).toBe(`${app.url}/launch`);
    expect(appLaunch.searchParams.get('iss')).toBe(server.fhirBase);
    const result = await follow(appLaunch.toString());
    expect(result.status, result.text).toBe(200);
    const body = JSON.parse(result.text);
    expect(body.patientId).toBe('member-hpsj-1');
    expect(body.fhirUser).toBe('Practitioner/hpsj-pcp-1');
    expect(body.patient.resourceType).toBe('Patient');
    expect(body.hasIdToken).toBe(true);
    expect(body.hasRefresh).toBe(true);
  });

  it('standalone patient launch: the member signs in and sees their own record', async () => {
    const start = await follow(`${app.url}/launch?iss=${encodeURIComponent(server.fhirBase)}&scope=${encodeURIComponent('launch/patient openid fhirUser patient/*.rs')}`);
    expect(start.text).toContain('Sign in');
    const form = new URLSearchParams();
    for (const m of start.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) form.set(m[1], m[2].replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>'));
    form.set('user', 'Patient/member-phc-2');
    const result = await follow(`${server.url}/auth/authorize`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
    expect(result.status, result.text).toBe(200);
    const body = JSON.parse(result.text);
    expect(body.patientId).toBe('member-phc-2');
    expect(body.fhirUser).toBe('Patient/member-phc-2');
  });
});
