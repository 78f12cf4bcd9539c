import express from 'express';
import { bearerTokenRequired } from '../auth/accessTokens.js';
import { criteriaHtml } from '../domain/criteria.js';
import { planById } from '../domain/plans.js';
import type { AccessPolicy } from '../fhir/context.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { REPORT_ROLES } from '../fhir/operations/report.js';
import { forbidden, normalizeError } from '../fhir/outcomes.js';
import { committeeCsv, committeeFigures, committeePlanFor } from '../workflow/reports.js';
import type { Authenticate } from './fhirRoutes.js';
import { send } from './fhirRoutes.js';

/**
 * Non-FHIR renderings: the committee report as CSV (R19) for the same users as the FHIR operation,
 * and the published criteria as a page anyone may read (R21, H&S 1363.5).
 */
export function reportRouter(store: FhirStore, policy: AccessPolicy, authenticate: Authenticate, fhirBase: string): express.Router {
  const router = express.Router();
  router.get('/reports/second-opinion.csv', async (req, res) => {
    try {
      const auth = await authenticate(req.headers.authorization);
      if (!auth) throw bearerTokenRequired(fhirBase);
      policy.requireScope(auth, 'Task', 'search');
      if (!auth.roles.some((r) => (REPORT_ROLES as readonly string[]).includes(r))) throw forbidden('Only plan staff may read the committee report');
      const period = typeof req.query.period === 'string' ? req.query.period : '';
      const plan = await committeePlanFor(store, auth, typeof req.query.plan === 'string' ? req.query.plan : undefined);
      const csv = committeeCsv(await committeeFigures(store, period, plan, new Date()));
      res.type('text/csv').setHeader('Content-Disposition', `attachment; filename="second-opinion-${period}.csv"`);
      res.send(csv);
    } catch (err) {
      const e = normalizeError(err);
      send(res, { status: e.status, body: e.outcome, headers: e.headers });
    }
  });
  router.get('/criteria/:plan', (req, res) => {
    const plan = planById(req.params.plan);
    if (!plan) return void res.status(404).type('text').send('Unknown plan');
    res.type('html').send(criteriaHtml(plan));
  });
  return router;
}

