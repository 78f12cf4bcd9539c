import express from 'express';
import type { OutboxMetrics } from '../outbound/worker.js';
import type { FhirStore } from '../storage/FhirStore.js';
import type { Authenticate } from './fhirRoutes.js';

const STAFF = ['plan-admin', 'auditor', 'um-clinician', 'medical-director'];

/**
 * `GET /metrics`: Prometheus text of the outbox (sent, retried, failed, dead-lettered, queue depth),
 * for plan staff or system tokens; deliveries that failed for good are also Tasks in the UM queue.
 */
export function metricsRouter(store: FhirStore, outbox: () => OutboxMetrics, authenticate: Authenticate): express.Router {
  const router = express.Router();
  router.get('/metrics', async (req, res) => {
    let allowed = false;
    try {
      const auth = await authenticate(req.headers.authorization);
      allowed = Boolean(auth && (auth.kind === 'system' || auth.roles.some((r) => STAFF.includes(r))));
    } catch {
      allowed = false;
    }
    if (!allowed) return void res.status(401).setHeader('WWW-Authenticate', 'Bearer').type('text').send('plan staff token required\n');
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
