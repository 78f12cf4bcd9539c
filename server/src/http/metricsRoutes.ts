import express from 'express';
import type { OutboxMetrics } from '../outbound/worker.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { bearerTokenRequired } from '../auth/accessTokens.js';
import { FhirError } from '../fhir/outcomes.js';
import type { Authenticate } from './fhirRoutes.js';

const STAFF = ['plan-admin', 'auditor', 'um-clinician', 'medical-director'];

/**
 * `GET /metrics`: Prometheus text of the outbox (sent, retried, failed, dead-lettered, queue depth),
 * for plan staff or system tokens; deliveries that failed for good are also Tasks in the UM queue.
 */
export function metricsRouter(store: FhirStore, outbox: () => OutboxMetrics, authenticate: Authenticate, fhirBase: string): express.Router {
  const router = express.Router();
  router.get('/metrics', async (req, res) => {
    const refusal = await refusalOf(() => authenticate(req.headers.authorization), fhirBase);
    if (refusal) {
      for (const [name, value] of Object.entries(refusal.headers)) res.setHeader(name, value);
      return void res.status(refusal.status).type('text').send(`${refusal.message}\n`);
    }
    const m = outbox();
    const depth = await store.outboxDepth().catch(() => m.queueDepth ?? 0);
    const lines = [
      ['outbox_sent_total', 'counter', 'Messages delivered', m.sent],
      ['outbox_retried_total', 'counter', 'Failed attempts scheduled for retry', m.retried],
      ['outbox_failed_total', 'counter', 'Failed attempts (retried and dead-lettered)', m.failed],
      ['outbox_dead_lettered_total', 'counter', 'Messages given up after the retry limit (visible to UM staff as Tasks)', m.deadLettered],
      ['outbox_in_flight', 'gauge', 'Messages being sent now', m.inFlight],
      ['outbox_queue_depth', 'gauge', 'Messages waiting', depth],
    ].flatMap(([name, type, help, value]) => [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`]);
    res.type('text/plain; version=0.0.4').send(`${lines.join('\n')}\n`);
  });
  return router;
}

/**
 * Why the caller may not read the metrics, as the FHIR API would answer: no bearer token 401 with the realm's
 * challenge, a token that does not verify 401 invalid_token, a token of no plan staff or system 403, the
 * database away 503. Undefined when they may.
 */
async function refusalOf(authenticate: () => ReturnType<Authenticate>, fhirBase: string): Promise<{ status: number; message: string; headers: Record<string, string> } | undefined> {
  try {
    const auth = await authenticate();
    if (!auth) throw bearerTokenRequired(fhirBase);
    if (auth.kind === 'system' || auth.roles.some((r) => STAFF.includes(r))) return undefined;
    return { status: 403, message: 'Plan staff or a backend service token is required', headers: {} };
  } catch (err) {
    if (err instanceof FhirError) return { status: err.status, message: err.message, headers: err.headers };
    throw err;
  }
}
