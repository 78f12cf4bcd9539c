import { prepareWrite, presentResponse } from './accessRules.js';
import type { FhirContext, Interaction, OperationDefinitionEntry } from './context.js';
import { processBundle } from './interactions/bundle.js';
import {
  conditionalDelete,
  conditionalUpdate,
  createResource,
  deleteResource,
  patchResource,
  readResource,
  OPERATION_INPUT,
  requireValid,
  validationErrors,
  updateResource,
  vreadResource,
} from './interactions/crud.js';
import { capabilities, isServerStatement, readServerStatement } from './capability.js';
import { history } from './interactions/history.js';
import { searchType } from './interactions/search.js';
import { badRequest, FhirError, normalizeError, notFound, unprocessableIssues } from './outcomes.js';
import type { FhirRequest, FhirResponse } from './request.js';
import { notAllowed, withAllow } from './responses.js';
import { isAppendOnlyType, isReadOnlyType, isSupportedType } from './resourceTypes.js';
import { isResource, rebase, splitCarried } from './resourceValidator.js';
import { requireScope } from './guard.js';

type Route = (req: FhirRequest, ctx: FhirContext, p: string[]) => Promise<FhirResponse>;

/**
 * The route table: path shape + method → interaction. Every interaction is a short function;
 * errors thrown anywhere become OperationOutcomes in handleRequest.
 */
type RouteEntry = { shape: string; method: string; interaction: Interaction | 'batch' | 'capabilities'; run: Route };

const ROUTES: RouteEntry[] = [
  { shape: '', method: 'POST', interaction: 'batch', run: (req, ctx) => processBundle(req, ctx, dispatch, handleRequest) },
  { shape: '_history', method: 'GET', interaction: 'history', run: (req, ctx) => history(req, ctx) },
  { shape: 'T', method: 'GET', interaction: 'search', run: (req, ctx, [t]) => searchType(req, ctx, t, req.query) },
  { shape: 'T/_search', method: 'POST', interaction: 'search', run: (req, ctx, [t]) => searchType(req, ctx, t, [...req.query, ...formParams(req)]) },
  { shape: 'T', method: 'POST', interaction: 'create', run: (req, ctx, [t]) => createResource(req, ctx, t, req.presetId) },
  { shape: 'T', method: 'PUT', interaction: 'update', run: (req, ctx, [t]) => conditionalUpdate(req, ctx, t) },
  { shape: 'T', method: 'DELETE', interaction: 'delete', run: (req, ctx, [t]) => conditionalDelete(req, ctx, t) },
  { shape: 'T/_history', method: 'GET', interaction: 'history', run: (req, ctx, [t]) => history(req, ctx, t) },
  { shape: 'T/i', method: 'GET', interaction: 'read', run: (req, ctx, [t, i]) => (isServerStatement(t, i) ? readServerStatement(req, ctx, t) : readResource(req, ctx, t, i)) },
  { shape: 'T/i', method: 'PUT', interaction: 'update', run: (req, ctx, [t, i]) => updateResource(req, ctx, t, i) },
  { shape: 'T/i', method: 'PATCH', interaction: 'patch', run: (req, ctx, [t, i]) => patchResource(req, ctx, t, i) },
  { shape: 'T/i', method: 'DELETE', interaction: 'delete', run: (req, ctx, [t, i]) => deleteResource(req, ctx, t, i) },
  { shape: 'T/i/_history', method: 'GET', interaction: 'history', run: (req, ctx, [t, i]) => history(req, ctx, t, i) },
  { shape: 'T/i/_history/v', method: 'GET', interaction: 'vread', run: (req, ctx, [t, i, , v]) => vreadResource(req, ctx, t, i, v) },
];

/** The shape of a path: resource types become T, ids i, versions v; fixed words stay. */
function shapeOf(path: string[]): string {
  return path
    .map((seg, n) => {
      if (n === 0) return seg === '_history' ? seg : 'T';
      if (seg === '_history' || seg === '_search') return seg;
      return n === 3 ? 'v' : 'i';
    })
    .join('/');
}

export async function dispatch(req: FhirRequest, ctx: FhirContext): Promise<FhirResponse> {
  const op = req.path.findIndex((s) => s.startsWith('$'));
  if (op >= 0) return runOperation(req, ctx, op);
  if (req.path.length === 1 && req.path[0] === 'metadata') return metadata(req, ctx);
  if (req.path[0] && req.path[0] !== '_history' && !isSupportedType(req.path[0])) {
    throw notFound(`Unknown resource type '${req.path[0].slice(0, 64)}'`);
  }
  const shape = shapeOf(req.path);
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const candidates = ROUTES.filter((r) => r.shape === shape);
  if (!candidates.length) throw notFound(`No FHIR interaction at /${req.path.join('/').slice(0, 200)}`);
  const route = candidates.find((r) => r.method === method);
  if (!route) throw notAllowed(`${req.method} is not allowed on /${req.path.join('/').slice(0, 200)}`, allowedMethods(req));
  return route.run(route.interaction === 'batch' || route.interaction === 'capabilities' ? req : prepareWrite({ ...req, interaction: route.interaction }, ctx), ctx, req.path);
}

/** GET metadata where it reaches the router: as a batch entry (over HTTP, /metadata is answered before authentication). */
function metadata(req: FhirRequest, ctx: FhirContext): Promise<FhirResponse> {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw notAllowed(`${req.method} is not allowed on /metadata`, ['GET', 'HEAD']);
  return capabilities(req, ctx);
}

/**
 * The methods a path answers, for the Allow header of a 405: the routes of its shape, less the changes its type
 * refuses (read-only and append-only types) and, on a type, conditional writes without criteria.
 */
function allowedMethods(req: FhirRequest): string[] {
  const [type = ''] = req.path;
  const answers = (route: RouteEntry): boolean => {
    if (route.interaction === 'create') return !isReadOnlyType(type);
    if (route.interaction !== 'update' && route.interaction !== 'patch' && route.interaction !== 'delete') return true;
    return !isReadOnlyType(type) && !isAppendOnlyType(type) && (route.shape !== 'T' || req.query.length > 0);
  };
  return ROUTES.filter((r) => r.shape === shapeOf(req.path) && answers(r)).flatMap((r) => (r.method === 'GET' ? ['GET', 'HEAD'] : [r.method]));
}

/** The methods a 405 names, wherever it was thrown: an operation's, the metadata's, or the path's. */
function allowedAt(req: FhirRequest, ctx: FhirContext): string[] {
  const at = req.path.findIndex((s) => s.startsWith('$'));
  if (at >= 0) {
    // The operation at this level and type: `$submit` on ServiceRequest changes state, on CoverageEligibilityRequest not.
    const level = at === 0 ? 'system' : at === 1 ? 'type' : 'instance';
    const entry = findOperation(ctx.operations, req.path[at].slice(1), level, at > 0 ? req.path[0] : undefined);
    return entry ? operationMethods(entry) : ['POST'];
  }
  return req.path.length === 1 && req.path[0] === 'metadata' ? ['GET', 'HEAD'] : allowedMethods(req);
}

/** R4 operations.html#executing: POST always; GET (and so HEAD) too for one that does not change state. */
const operationMethods = (entry: OperationDefinitionEntry): string[] => (entry.affectsState ? ['POST'] : ['GET', 'HEAD', 'POST']);

async function runOperation(req: FhirRequest, ctx: FhirContext, at: number): Promise<FhirResponse> {
  const name = req.path[at].slice(1);
  const level = at === 0 ? 'system' : at === 1 ? 'type' : at === 2 ? 'instance' : undefined;
  const resourceType = at > 0 ? req.path[0] : undefined;
  if (!level || at !== req.path.length - 1) throw notFound(`No operation at /${req.path.join('/').slice(0, 200)}`);
  if (resourceType && !isSupportedType(resourceType)) throw notFound(`Unknown resource type '${resourceType.slice(0, 64)}'`);
  const entry = findOperation(ctx.operations, name, level, resourceType);
  if (!entry) throw notFound(`Unknown operation $${name.slice(0, 64)} at ${level} level${resourceType ? ` on ${resourceType}` : ''}`);
  // HEAD asks what GET would answer, without the body (the HTTP layer leaves it out).
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  if (method !== 'POST' && (entry.affectsState || method !== 'GET')) {
    throw notAllowed(`$${name} must be invoked with POST${entry.affectsState ? '' : ' or GET'}`, operationMethods(entry));
  }
  if (resourceType) requireScope(req, ctx, resourceType, entry.interaction);
  requireValidInput(ctx, req.body);
  return entry.handler({ ...req, method, interaction: entry.interaction }, ctx, { resourceType, id: at === 2 ? req.path[1] : undefined });
}

/**
 * The resources an operation is sent (a bare resource or Bundle body, or the resources inside a Parameters
 * body, whose own shape the operation's parser judges: 400) are checked against R4, 422 naming each error.
 */
function requireValidInput(ctx: FhirContext, body: unknown): void {
  if (!isResource(body)) return;
  if (body.resourceType !== 'Parameters') return requireValid(ctx, body, OPERATION_INPUT);
  const { carried } = splitCarried(body);
  const errors = carried.flatMap((c) => validationErrors(ctx, c.resource, OPERATION_INPUT).map((issue) => ({ ...issue, expression: issue.expression?.map((e) => rebase(e, c)) })));
  if (errors.length) throw unprocessableIssues(errors);
}

export function findOperation(
  operations: OperationDefinitionEntry[],
  name: string,
  level: 'system' | 'type' | 'instance',
  resourceType?: string,
): OperationDefinitionEntry | undefined {
  return operations.find((o) => o.name === name && o.levels.includes(level) && (level === 'system' || o.resourceTypes.includes(resourceType!)));
}

function formParams(req: FhirRequest): [string, string][] {
  if (req.body === undefined || req.body === null || req.body === '') return [];
  if (typeof req.body === 'string') return [...new URLSearchParams(req.body).entries()];
  if (typeof req.body === 'object' && !Array.isArray(req.body)) {
    return Object.entries(req.body as Record<string, unknown>).flatMap(([k, v]) =>
      (Array.isArray(v) ? v : [v]).map((x): [string, string] => [k, String(x)]),
    );
  }
  throw badRequest('POST _search takes application/x-www-form-urlencoded parameters');
}

/** Entry point for one FHIR request; any error becomes an OperationOutcome response; every call is audited. */
export async function handleRequest(req: FhirRequest, ctx: FhirContext): Promise<FhirResponse> {
  let response: FhirResponse;
  let concealedRefusal = false;
  try {
    response = presentResponse(req, ctx, await dispatch(req, ctx));
    concealedRefusal = response.concealsRefusal === true;
  } catch (err) {
    let error: FhirError = normalizeError(err);
    concealedRefusal = error.concealsRefusal;
    if (error.status >= 500 && !(err instanceof FhirError)) ctx.onUnexpectedError?.(err);
    // A 405 thrown below the router (a read-only type, a conditional write without criteria) names what is allowed too.
    if (error.status === 405 && !error.headers.Allow) error = withAllow(error, allowedAt(req, ctx));
    response = { status: error.status, body: error.outcome, headers: error.headers };
  }
  await ctx.audit.record({
    interaction: interactionOf(req),
    resourceType: req.path[0]?.startsWith('$') || req.path[0] === '_history' ? undefined : req.path[0],
    id: req.path.length >= 2 && !req.path[1].startsWith('$') && !req.path[1].startsWith('_') ? req.path[1] : undefined,
    operation: req.path.find((s) => s.startsWith('$')),
    status: response.status,
    concealedRefusal,
    // A refusal answered as a success (a DELETE's 204) is still a failure.
    failed: concealedRefusal || undefined,
    auth: req.auth,
    patient: patientOf(response),
  });
  return response;
}

function interactionOf(req: FhirRequest): Interaction | 'batch' | 'transaction' {
  if (req.path.some((s) => s.startsWith('$'))) return 'operation';
  if (req.path.length === 0) return (req.body as { type?: string } | undefined)?.type === 'transaction' ? 'transaction' : 'batch';
  const shape = shapeOf(req.path);
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const route = ROUTES.find((r) => r.shape === shape && r.method === method);
  return (route?.interaction as Interaction | undefined) ?? 'read';
}

function patientOf(response: FhirResponse): string | undefined {
  const body = response.body as { resourceType?: string; id?: string; subject?: { reference?: string }; for?: { reference?: string }; patient?: { reference?: string }; beneficiary?: { reference?: string } } | undefined;
  if (!body) return undefined;
  if (body.resourceType === 'Patient' && body.id) return `Patient/${body.id}`;
  const ref = body.subject?.reference ?? body.for?.reference ?? body.patient?.reference ?? body.beneficiary?.reference;
  return ref?.startsWith('Patient/') ? ref : undefined;
}
