import type { DocumentReference, OperationDefinition, Reference, Resource } from 'fhir/r4.js';
import type { ReviewAction } from '../../domain/reviewPath.js';
import { type CallerAccess, performReviewAction, type ReviewInput } from '../../workflow/caseReview.js';
import type { ProviderDelivery } from '../../workflow/providerDelivery.js';
import type { FhirContext, OperationDefinitionEntry } from '../context.js';
import { mayAccess, requireAccess, requireVisible, requireVisiblePatient } from '../guard.js';
import { ifMatchVersion } from '../interactions/crud.js';
import { badRequest, forbidden } from '../outcomes.js';
import type { FhirRequest } from '../request.js';
import { ID_RE } from '../responses.js';
import { CANONICAL_BASE } from '../systems.js';
import { parseOperationInput, type ParsedParameters } from './parameters.js';

export const REVIEW_ACTIONS: ReviewAction[] = ['approve', 'request-info', 'answer-info', 'escalate', 'deny', 'modify', 'extend', 'refer-consultative-review', 'withdraw', 'post-report'];

const strings = (p: ParsedParameters, name: string) => (p.get(name) ?? []).filter((v): v is string => typeof v === 'string');
const one = <T>(p: ParsedParameters, name: string) => p.get(name)?.[0] as T | undefined;

function reviewInput(p: ParsedParameters): ReviewInput {
  return {
    authorizedPractitionerRole: one<Reference>(p, 'authorizedPractitionerRole'),
    note: one<string>(p, 'note'),
    what: strings(p, 'what'),
    document: p.get('document') as Reference[] | undefined,
    reason: one<string>(p, 'reason'),
    criteria: one<string>(p, 'criteria'),
    days: one<number>(p, 'days'),
    reviewer: one<Reference>(p, 'reviewer'),
    report: one<Resource>(p, 'report') as DocumentReference | undefined,
    outOfNetworkTreatment: one<string>(p, 'outOfNetworkTreatment'),
    treatmentPerformer: one<Reference>(p, 'treatmentPerformer'),
  };
}

/**
 * What the token may see and use, as a read by id judges it (guard.ts requireVisible: what it may not see is 404, as a
 * missing id). The token's compartment: for the case Task, judged for the operation's interaction (req.interaction, set by
 * the router); for what the operation only reads, judged for a read (a decision updates the Task, not the request).
 */
export const callerAccess = (req: FhirRequest, ctx: FhirContext): CallerAccess => {
  const reading: FhirRequest = { ...req, interaction: 'read' };
  return {
    require: (resource) => {
      requireVisible(req, ctx, resource);
      requireAccess(req, ctx, resource);
    },
    requireRead: (resource) => requireVisible(reading, ctx, resource),
    may: (resource) => mayAccess(reading, ctx, resource),
    requireAboutVisiblePatient: (resource, store) => requireVisiblePatient(reading, ctx, resource, undefined, store),
    compartmentsOf: (resource) => ctx.indexer.patientCompartments(resource),
  };
};

/**
 * `Task/{id}/$<action>` for each step of the review path (R10, R11, R13, R14). Inputs are parsed
 * against the published OperationDefinition; the business logic is workflow/caseReview.ts.
 */
export function reviewOperations(definitions: OperationDefinition[], delivery?: ProviderDelivery): OperationDefinitionEntry[] {
  return REVIEW_ACTIONS.map((action) => {
    const definition = definitions.find((d) => d.id === `Task-${action}`);
    if (!definition) throw new Error(`OperationDefinition Task-${action} is missing from profiles/`);
    return {
      name: action,
      levels: ['instance'],
      resourceTypes: ['Task'],
      interaction: action === 'post-report' || action === 'answer-info' || action === 'withdraw' ? 'read' : 'update',
      affectsState: true,
      definition: `${CANONICAL_BASE}/OperationDefinition/Task-${action}`,
      async handler(req, ctx, args) {
        if (!req.auth) throw forbidden('Review actions need an authenticated user');
        if (!args.id || !ID_RE.test(args.id)) throw badRequest('Invalid Task id');
        const input = reviewInput(parseOperationInput(req, definition));
        const task = await performReviewAction(ctx.store, args.id, action, input, req.auth, callerAccess(req, ctx), { ifMatch: ifMatchVersion(req), delivery });
        return { status: 200, body: task, headers: { ETag: `W/"${task.meta?.versionId}"` } };
      },
    };
  });
}
