import type { Bundle, Resource } from 'fhir/r4.js';
import type { FhirContext } from './context.js';
import type { FhirRequest, FhirResponse } from './request.js';

/**
 * Where the per-type access rules of FhirContext.accessRules (ResourceAccessRule) apply besides
 * guard.mayAccess and the search clauses: the body a create or update sends, and what any response
 * shows. Both are no-ops for types without a rule and with auth off.
 */

/** The request with its create or update body completed by the type's rule (router.dispatch, so Bundle entries too). */
export function prepareWrite(req: FhirRequest, ctx: FhirContext): FhirRequest {
  const type = req.path[0];
  const rule = type ? ctx.accessRules?.[type] : undefined;
  const body = req.body as Resource | undefined;
  if (!rule?.prepareWrite || !req.auth || (req.interaction !== 'create' && req.interaction !== 'update')) return req;
  if (typeof body !== 'object' || body === null || body.resourceType !== type) return req; // refused by the interaction (400)
  return { ...req, body: rule.prepareWrite({ ...req, auth: req.auth }, ctx, body) };
}

/** The response as the caller may see it: each resource, also inside Bundles (searches, history, batches), through its type's `present`. */
export function presentResponse(req: FhirRequest, ctx: FhirContext, response: FhirResponse): FhirResponse {
  const { auth } = req;
  const rules = ctx.accessRules;
  if (!auth || !rules || !response.body) return response;
  const present = (resource: Resource): Resource => {
    if (resource.resourceType === 'Bundle') {
      const bundle = resource as Bundle;
      if (!bundle.entry) return bundle;
      const shown: Bundle = { ...bundle, entry: bundle.entry.map((e) => (e.resource ? { ...e, resource: present(e.resource) } : e)) };
      return shown;
    }
    return rules[resource.resourceType]?.present?.(auth, resource) ?? resource;
  };
  return { ...response, body: present(response.body) };
}
