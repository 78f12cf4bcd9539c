import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import smart from 'fhirclient/lib/entry/node.js';

type Storage = { get(k: string): Promise<unknown>; set(k: string, v: unknown): Promise<unknown>; unset(k: string): Promise<boolean> };

/**
 * A SMART app in Node using fhirclient's Node entry: `/launch` authorizes (EHR or standalone),
 * `/redirect` completes with `ready()` and reads the patient in context, answering JSON.
 */
export async function startSmartApp(app: { clientId: string }, scope: string): Promise<{ url: string; close(): Promise<void> }> {
  const data = new Map<string, unknown>();
  const storage: Storage = {
    get: async (k) => data.get(k),
    set: async (k, v) => (data.set(k, v), v),
    unset: async (k) => data.delete(k),
  };
  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (url.pathname === '/launch') {
        await smart(req, res, storage).authorize({ clientId: app.clientId, scope: url.searchParams.get('scope') ?? scope, redirectUri: '/redirect', iss: url.searchParams.get('iss') ?? undefined });
        return;
      }
      if (url.pathname === '/redirect') {
        const client = await smart(req, res, storage).ready();
        const patient = client.patient.id ? await client.request(`Patient/${client.patient.id}`) : undefined;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ patientId: client.patient.id, fhirUser: client.getFhirUser(), patient, scope: client.state.tokenResponse?.scope, hasIdToken: Boolean(client.state.tokenResponse?.id_token), hasRefresh: Boolean(client.state.tokenResponse?.refresh_token) }));
        return;
      }
      res.statusCode = 404;
      res.end();
    } catch (err) {
      res.statusCode = 500;
      res.end(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Follows redirects by hand (keeping the form posts ours) until a non-redirect answer. */
export async function follow(url: string, init: RequestInit = {}, max = 10): Promise<{ url: string; status: number; text: string }> {
  let current = url;
  let request: RequestInit = init;
  for (let i = 0; i < max; i++) {
    const res = await fetch(current, { ...request, redirect: 'manual' });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      current = new URL(location, current).toString();
      request = {};
      continue;
    }
    return { url: current, status: res.status, text: await res.text() };
  }
  throw new Error('too many redirects');
}
