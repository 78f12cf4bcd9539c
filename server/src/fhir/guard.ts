import type { Resource } from 'fhir/r4.js';
import type { FhirContext, Interaction } from './context.js';
import { forbidden } from './outcomes.js';
import type { FhirRequest } from './request.js';

/** Scope check for an interaction on a type; no-op when auth is off (tests of the FHIR layer alone). */
export function requireScope(req: FhirRequest, ctx: FhirContext, resourceType: string, interaction: Interaction): void {
  if (req.auth) ctx.policy.requireScope(req.auth, resourceType, interaction);
}

/** The interaction a resource-level check is judged for: the one routed, a read where none was (a bare operation). */
const interactionOf = (req: FhirRequest): Interaction => req.interaction ?? 'read';

/** The compartment a search (or the search of a conditional write) must be limited to, if any. */
export function compartmentOf(req: FhirRequest, ctx: FhirContext, resourceType: string): string | undefined {
  return req.auth ? ctx.policy.patientCompartment(req.auth, resourceType, interactionOf(req)) : undefined;
}

export function mayAccess(req: FhirRequest, ctx: FhirContext, resource: Resource): boolean {
  if (!req.auth) return true;
  // Evaluating the compartment's search parameters is skipped for user and system grants, which need no compartment.
  return ctx.policy.mayAccess(req.auth, resource.resourceType, interactionOf(req), () => ctx.indexer.patientCompartments(resource));
}

export function requireAccess(req: FhirRequest, ctx: FhirContext, resource: Resource): void {
  if (!mayAccess(req, ctx, resource)) {
    throw forbidden(`Access to ${resource.resourceType}/${resource.id ?? '(new)'} is outside the patient compartment of this token`);
  }
}
