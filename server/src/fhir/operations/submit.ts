import type { Bundle, OperationDefinition, Reference, ServiceRequest } from 'fhir/r4.js';
import { approvedOnReceipt } from '../../workflow/caseReview.js';
import type { ProviderDelivery } from '../../workflow/providerDelivery.js';
import { checkEligibility, resultBundle, submitSecondOpinion, type DecideCase } from '../../workflow/submit.js';
import type { FhirContext, OperationDefinitionEntry } from '../context.js';
import { mayAccess, requireScope } from '../guard.js';
import { OPERATION_INPUT, requireValid } from '../interactions/crud.js';
import type { FhirRequest, FhirResponse } from '../request.js';
import { parseOperationInput } from './parameters.js';
import { locationOf, writeResponse } from '../responses.js';
import { CANONICAL_BASE, PROFILES } from '../systems.js';

const actorOf = (fhirUser?: string): Reference | undefined => (fhirUser ? { reference: fhirUser } : undefined);

/** The operation's OperationDefinition among those published (profiles/). */
export function definitionIn(definitions: OperationDefinition[], id: string): OperationDefinition {
  const definition = definitions.find((d) => d.id === id);
  if (!definition) throw new Error(`OperationDefinition/${id} is not among the conformance resources`);
  return definition;
}

/** The `bundle` input, read as the OperationDefinition declares it: one, by that name (a bare Bundle body is it), nothing else. */
const submittedBundle = (req: FhirRequest, definition: OperationDefinition): Bundle => parseOperationInput(req, definition).get('bundle')![0] as Bundle;

/** `ServiceRequest/$submit`: a second-opinion request becomes a case (ServiceRequest, eligibility, Task). */
export function submitOperation(definitions: OperationDefinition[], decide: DecideCase, delivery?: ProviderDelivery): OperationDefinitionEntry {
  const definition = definitionIn(definitions, 'ServiceRequest-submit');
  return {
    name: 'submit',
    levels: ['type'],
    resourceTypes: ['ServiceRequest'],
    interaction: 'create',
    affectsState: true,
    definition: `${CANONICAL_BASE}/OperationDefinition/ServiceRequest-submit`,
    async handler(req, ctx) {
      return submitCase(req, ctx, submittedBundle(req, definition), decide, delivery);
    },
  };
}

/** Stores the submitted request as a case and answers with its resources (201, or 200 for a case already submitted). */
async function submitCase(req: FhirRequest, ctx: FhirContext, submission: unknown, decide: DecideCase, delivery?: ProviderDelivery, serviceRequestId?: string): Promise<FhirResponse> {
  for (const type of ['Task', 'CoverageEligibilityResponse']) requireScope(req, ctx, type, 'read');
  const result = await submitSecondOpinion(ctx.store, submission, decide, actorOf(req.auth?.fhirUser), new Date(), {
    authorize: (resource) => {
      requireScope(req, ctx, resource.resourceType, 'create');
    },
    mayAccess: (resource) => mayAccess(req, ctx, resource),
    compartmentsOf: (resource) => ctx.indexer.patientCompartments(resource),
    onApproval: approvedOnReceipt(delivery),
    serviceRequestId,
  });
  // A new case is created at its ServiceRequest (RFC 9110 §15.3.2: a 201 names what it created).
  const headers = result.created ? { Location: locationOf(req.baseUrl, result.serviceRequest) } : undefined;
  return { status: result.created ? 201 : 200, body: resultBundle(result, req.baseUrl), headers };
}

/**
 * A plain `POST /ServiceRequest` carrying the second-opinion profile starts the same workflow as
 * `$submit` (the request alone, referring to stored resources); it answers with the stored ServiceRequest.
 */
export function submitOnCreate(decide: DecideCase, delivery?: ProviderDelivery): NonNullable<FhirContext['createInterceptors']>[string] {
  return async (req, ctx, resource) => {
    if (!Array.isArray(resource.meta?.profile) || !resource.meta.profile.includes(PROFILES.serviceRequest)) return undefined;
    requireValid(ctx, resource, OPERATION_INPUT);
    const bundle: Bundle = { resourceType: 'Bundle', type: 'collection', entry: [{ resource }] };
    // Inside a transaction the create was given an id, which entries that ran before it may refer to.
    const response = await submitCase(req, ctx, bundle, decide, delivery, req.presetId);
    const stored = (response.body as Bundle).entry?.[0]?.resource as ServiceRequest;
    return writeResponse(req, stored, response.status);
  };
}

/** `CoverageEligibilityRequest/$submit` (auth-requirements): would this second opinion need authorization? Creates nothing. */
export function eligibilityCheckOperation(definitions: OperationDefinition[], decide: DecideCase): OperationDefinitionEntry {
  const definition = definitionIn(definitions, 'CoverageEligibilityRequest-submit');
  return {
    name: 'submit',
    levels: ['type'],
    resourceTypes: ['CoverageEligibilityRequest'],
    interaction: 'create',
    affectsState: false,
    definition: `${CANONICAL_BASE}/OperationDefinition/CoverageEligibilityRequest-submit`,
    async handler(req, ctx) {
      const response = await checkEligibility(ctx.store, submittedBundle(req, definition), decide, {
        authorize: () => undefined,
        mayAccess: (resource) => mayAccess(req, ctx, resource),
        compartmentsOf: (resource) => ctx.indexer.patientCompartments(resource),
      });
      return { status: 200, body: response };
    },
  };
}
