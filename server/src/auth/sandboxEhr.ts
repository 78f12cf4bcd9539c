import { randomBytes } from 'node:crypto';
import express from 'express';
import type { FhirStore } from '../storage/FhirStore.js';
import { demoUsers, listPatients, type LaunchContext } from './authorizeEndpoint.js';
import type { ClientRegistry } from './clientRegistry.js';
import { esc, page, select } from './pages.js';

/**
 * A development EHR (like the public SMART launcher): pick a practitioner, a patient and an app;
 * Launch creates a launch context bound to both and to the app, and opens the app's launch URL with iss and launch.
 * The authorization endpoint accepts a launch id once, from that app only.
 */
export function sandboxRouter(deps: { store: FhirStore; clients: ClientRegistry; fhirBase: string }): express.Router {
  const router = express.Router();
  router.get('/sandbox', async (_req, res) => {
    const users = (await demoUsers(deps.store)).filter((u) => u.value.startsWith('Practitioner/'));
    const patients = await listPatients(deps.store);
    const apps = deps.clients.all().filter((c) => c.launch_uri);
    const body = `<h1>Sandbox EHR</h1>
<p class="note">Plays the EHR for development: launches a registered SMART app with <code>iss</code> and <code>launch</code>. FHIR base: <code>${esc(deps.fhirBase)}</code></p>
<form method="post" action="/sandbox/launch">
${select('user', 'Practitioner (the EHR user)', users)}
${select('patient', 'Patient in context', patients)}
${select('client_id', 'App', apps.map((a) => ({ value: a.client_id, label: a.client_name ?? a.client_id })))}
<button type="submit">Launch</button></form>`;
    res.type('html').send(page('Sandbox EHR', body));
  });
  router.post('/sandbox/launch', express.urlencoded({ extended: false }), async (req, res) => {
    const form = req.body as Record<string, string | undefined>;
    const client = await deps.clients.get(form.client_id ?? '');
    if (!client?.launch_uri || !form.user?.startsWith('Practitioner/') || !form.patient?.startsWith('Patient/')) {
      res.status(400).type('html').send(page('Launch failed', '<p>Choose a practitioner, a patient and an app.</p>'));
      return;
    }
    const launch = randomBytes(16).toString('hex');
    const context: LaunchContext = { clientId: client.client_id, fhirUser: form.user, patient: form.patient.slice('Patient/'.length) };
    await deps.store.putEphemeral(`launch:${launch}`, context, new Date(Date.now() + 10 * 60_000));
    const url = new URL(client.launch_uri);
    url.searchParams.set('iss', deps.fhirBase);
    url.searchParams.set('launch', launch);
    res.redirect(302, url.toString());
  });
  return router;
}
