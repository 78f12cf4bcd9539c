import type { OperationDefinition } from 'fhir/r4.js';
import { requireRole } from '../../auth/policy.js';
import { committeeFigures, committeeMeasureReport, committeePlanFor } from '../../workflow/reports.js';
import type { OperationDefinitionEntry } from '../context.js';
import { requireScope } from '../guard.js';
import { forbidden } from '../outcomes.js';
import { CANONICAL_BASE } from '../systems.js';
import { parseOperationInput, single } from './parameters.js';

export const REPORT_ROLES = ['plan-admin', 'um-clinician', 'medical-director', 'auditor'] as const;

/**
 * `$second-opinion-report?period=2026-Q3&plan=bsp`: the committee figures (R19) as a MeasureReport.
 * Plan staff get their own plan's figures only; plan-admin and auditor any plan (committeePlanFor).
 */
export function committeeReportOperation(definition: OperationDefinition): OperationDefinitionEntry {
  return {
    name: 'second-opinion-report',
    levels: ['system'],
    resourceTypes: [],
    interaction: 'search',
    affectsState: false,
    definition: `${CANONICAL_BASE}/OperationDefinition/second-opinion-report`,
    async handler(req, ctx) {
      if (!req.auth) throw forbidden('The committee report needs an authenticated plan user');
      requireScope(req, ctx, 'Task', 'search');
      requireRole(req.auth, [...REPORT_ROLES], 'read the committee report');
      const params = parseOperationInput(req, definition);
      const period = single<string>(params, 'period')!;
      const plan = await committeePlanFor(ctx.store, req.auth, single<string>(params, 'plan'));
      const now = new Date();
      const figures = await committeeFigures(ctx.store, period, plan, now);
      return { status: 200, body: committeeMeasureReport(figures, period, plan, now) };
    },
  };
}
