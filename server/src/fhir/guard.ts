import type { Resource } from 'fhir/r4.js';
import type { FhirContext, Interaction } from './context.js';
import { forbidden } from './outcomes.js';
import { PROFILES } from './systems.js';
import type { FhirRequest } from './request.js';

/** Scope check for an interaction on a type; no-op when auth is off (tests of the FHIR layer alone). */
export function requireScope(req: FhirRequest, ctx: FhirContext, resourceType: string, interaction: Interaction): void {
  if (req.auth) ctx.policy.requireScope(req.auth, resourceType, interaction);
}

/** Whether the token's scopes allow the interaction on the type (the check of `requireScope`, without the refusal). */
export function hasScope(req: FhirRequest, ctx: FhirContext, resourceType: string, interaction: Interaction): boolean {
  try {
    requireScope(req, ctx, resourceType, interaction);
    return true;
  } catch {
    return false;
  }
}

/** The interaction a resource-level check is judged for: the one routed, a read where none was (a bare operation). */
const interactionOf = (req: FhirRequest): Interaction => req.interaction ?? 'read';

/** The compartment a search (or the search of a conditional write) must be limited to, if any. */
export function compartmentOf(req: FhirRequest, ctx: FhirContext, resourceType: string): string | undefined {
  return req.auth ? ctx.policy.patientCompartment(req.auth, resourceType, interactionOf(req)) : undefined;
}

export function mayAccess(req: FhirRequest, ctx: FhirContext, resource: Resource): boolean {
  if (!req.auth) return true;
  const rule = ctx.accessRules?.[resource.resourceType];
  if (rule && !rule.mayAccess({ ...req, auth: req.auth, interaction: interactionOf(req) }, ctx, resource)) return false;
  // Evaluating the compartment's search parameters is skipped for user and system grants, which need no compartment.
  return ctx.policy.mayAccess(req.auth, resource.resourceType, interactionOf(req), () => ctx.indexer.patientCompartments(resource));
}

export function requireAccess(req: FhirRequest, ctx: FhirContext, resource: Resource): void {
  if (!mayAccess(req, ctx, resource)) {
    throw forbidden(`Access to ${resource.resourceType}/${resource.id ?? '(new)'} is outside the patient compartment of this token`);
  }
}

const CASE_PROFILES: ReadonlySet<string> = new Set(Object.values(PROFILES));

/**
 * A second-opinion case's records (its ServiceRequest, Task, CoverageEligibilityResponse, notices and report)
 * change only through the case's operations, which check the review path, the parties and the deadlines
 * and leave Provenance; a plain create, update, patch or delete of one is plan administration's alone.
 */
export function requireCaseRecordWrite(req: FhirRequest, resource: Resource): void {
  if (!req.auth || req.auth.roles.includes('plan-admin')) return;
  const profiles: unknown = resource.meta?.profile;
  if (!Array.isArray(profiles) || !profiles.some((p) => CASE_PROFILES.has(p as string))) return;
  throw forbidden(`${resource.resourceType}/${resource.id ?? '(new)'} is a second-opinion case record: it changes only through the case's operations ($submit, Task/$approve, ...)`);
}
