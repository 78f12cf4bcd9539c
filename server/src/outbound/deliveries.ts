import type { AuditSink } from '../fhir/context.js';
import { auditExport, type Export, patientNamed } from './exportAudit.js';
import type { Endpoint, Identifier, Organization, PractitionerRole, Resource } from 'fhir/r4.js';
import { z } from 'zod';
import { parseLiteral } from '../fhir/references.js';
import { IDENTIFIER_SYSTEMS } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';
import type { NetworkPolicy } from './config.js';
import { classifyHttpError, isSuccessfulNonJson, PermanentError } from './errors.js';
import { checkOutboundUrl, fhirClient, identifierQuery, requestOptions, trimBase } from './http.js';
import type { ProviderAuth } from './providerAuth.js';
import type { OutboxHandler } from './worker.js';

/** Outbox kind of a resource created on a provider's FHIR server. */
export const FHIR_CREATE = 'fhir-create';

const Reference = z.string().regex(/^[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}$/);

export const FhirCreatePayload = z.object({
  /** The provider's FHIR base URL. */
  endpoint: z.url(),
  /** The resource as the provider should store it (no id or meta.versionId). */
  resource: z.looseObject({ resourceType: z.string().regex(/^[A-Z][A-Za-z]{1,63}$/) }),
  /** Business identifier: `If-None-Exist: identifier=system|value` makes a retry a no-op at the receiver. */
  identifier: z.object({ system: z.string().min(1), value: z.string().min(1) }),
  /** Selects per-plan credentials when a provider registered each plan separately. */
  plan: z.string().min(1).optional(),
  /** Our own resource this delivery carries (the focus of the delivery-failed Task). */
  focus: Reference.optional(),
  /** Who should act on a dead letter (defaults to the plan organization). */
  owner: Reference.optional(),
});
export type FhirCreatePayload = z.infer<typeof FhirCreatePayload>;

export interface DeliveryRequest {
  endpoint: string;
  resource: Resource;
  identifier: { system: string; value: string };
  plan?: string;
  owner?: string;
  /** Overrides the default dedupe key (`fhir-create:<endpoint>|<system>|<value>`), e.g. to resend on purpose. */
  dedupeKey?: string;
}

/**
 * Queues the creation of `resource` on a provider's server, in the caller's transaction: the
 * delivery is sent if and only if the change that asked for it commits. Enqueuing the same
 * identifier to the same endpoint twice is a no-op.
 */
export async function enqueueDelivery(tx: FhirStore, request: DeliveryRequest): Promise<void> {
  const endpoint = trimBase(request.endpoint);
  const focus = focusOf(request);
  const payload: FhirCreatePayload = FhirCreatePayload.parse({
    endpoint,
    resource: forReceiver(request.resource, request.identifier),
    identifier: request.identifier,
    plan: request.plan,
    focus,
    owner: request.owner,
  });
  await tx.enqueue(FHIR_CREATE, payload, request.dedupeKey ?? `${FHIR_CREATE}:${endpoint}|${request.identifier.system}|${request.identifier.value}`);
}

/**
 * Which resource of ours a delivery carries, for the delivery-failed Task (focus, and through it the
 * patient): the one named, the resource itself when it has our id, or the one its delivered-resource
 * identifier names, as copies come without our id.
 */
function focusOf(request: DeliveryRequest): string | undefined {
  const { resource, identifier } = request;
  const fromIdentifier = identifier.system === IDENTIFIER_SYSTEMS.deliveredResource ? identifier.value : undefined;
  const focus = resource.id ? `${resource.resourceType}/${resource.id}` : fromIdentifier;
  return Reference.safeParse(focus).success ? focus : undefined;
}

/**
 * The copy the receiver gets: without our id and version (the receiver assigns its own), and
 * carrying the business identifier, so that the If-None-Exist search finds it on a retry.
 */
export function forReceiver(resource: Resource, identifier: { system: string; value: string }): Resource {
  const { id: _id, meta, ...rest } = resource as Resource & { identifier?: Identifier[] };
  const copy = { ...rest } as Resource & { identifier?: Identifier[] };
  if (meta?.profile?.length) copy.meta = { profile: meta.profile };
  const identifiers = copy.identifier ?? [];
  if (!identifiers.some((i) => i.system === identifier.system && i.value === identifier.value)) {
    copy.identifier = [...identifiers, { system: identifier.system, value: identifier.value }];
  }
  return copy;
}

export interface DeliveryDeps {
  auth: ProviderAuth;
  network: NetworkPolicy;
  /** Our FHIR base, to know our own references in what is sent. */
  fhirBase: string;
  audit?: AuditSink;
}

/**
 * Handler of `fhir-create`: a conditional create at the provider. 201 (created) and 200 (it was
 * already there: an earlier attempt reached the provider but its answer did not reach us) both
 * mean done. 4xx other than 408/429 is permanent; 5xx, 408, 429 and network errors are retried.
 */
export function fhirCreateHandler(deps: DeliveryDeps): OutboxHandler {
  return async (raw) => {
    const parsed = FhirCreatePayload.safeParse(raw);
    if (!parsed.success) throw new PermanentError('fhir-create: malformed outbox payload');
    const { endpoint, resource, identifier, plan } = parsed.data;
    checkOutboundUrl(endpoint, deps.network, 'fhir-create endpoint');
    const sent: Export = { record: identifier.value, patient: patientNamed(resource as Resource, deps.fhirBase), destination: endpoint };
    try {
      await createIfNoneExist(deps, endpoint, plan, resource as Resource, identifier);
    } catch (err) {
      auditExport(deps.audit, sent, { error: err });
      throw err;
    }
    auditExport(deps.audit, sent, { status: 201 });
  };
}

/** Conditional create at a provider with backend-services auth; returns the stored resource when the provider sends it. */
export async function createIfNoneExist(
  deps: DeliveryDeps,
  endpoint: string,
  plan: string | undefined,
  resource: Resource,
  identifier: { system: string; value: string },
): Promise<Resource | undefined> {
  const client = fhirClient(endpoint);
  try {
    const created = await deps.auth.withAuthorization(endpoint, plan, (headers) =>
      client.create({
        resourceType: resource.resourceType,
        body: resource as unknown as Record<string, unknown> & { resourceType: string },
        options: requestOptions({ ...headers, 'if-none-exist': identifierQuery(identifier), prefer: 'return=representation' }, deps.network.timeoutMs, deps.network),
      }),
    );
    return (created as { resourceType?: unknown }).resourceType === resource.resourceType ? (created as unknown as Resource) : undefined;
  } catch (err) {
    if (isSuccessfulNonJson(err)) return undefined;
    throw classifyHttpError(err, `create ${resource.resourceType}`);
  }
}

const FHIR_REST = 'hl7-fhir-rest';

export interface ProviderEndpoint {
  /** The FHIR base URL (Endpoint.address). */
  address: string;
  /** `Endpoint/id` it came from. */
  endpoint: string;
}

/**
 * The FHIR REST endpoints of a provider, from our directory data: active `Endpoint`s with
 * connectionType hl7-fhir-rest referenced by the PractitionerRole (for a Practitioner: each of
 * their roles) and then by the organization of the role. The role's own endpoints come first.
 */
export async function endpointsFor(store: FhirStore, reference: string): Promise<ProviderEndpoint[]> {
  const literal = parseLiteral(reference);
  if (!literal) return [];
  const [type, id] = literal;
  const endpointRefs: string[] = [];
  const organizations: string[] = [];
  const addRole = (role: PractitionerRole) => {
    if (role.active === false) return;
    endpointRefs.push(...(role.endpoint ?? []).map((e) => e.reference ?? ''));
    if (role.organization?.reference) organizations.push(role.organization.reference);
  };
  if (type === 'PractitionerRole') {
    const role = (await store.find(type, id)) as PractitionerRole | undefined;
    if (role) addRole(role);
  } else if (type === 'Practitioner') {
    const { resources } = await store.search({
      resourceType: 'PractitionerRole',
      clauses: [{ kind: 'reference', param: 'practitioner', values: [`practitioner|Practitioner/${id}`] }],
      sort: [],
      count: 50,
      offset: 0,
      total: false,
    });
    for (const role of resources as PractitionerRole[]) addRole(role);
  } else if (type === 'Organization') {
    organizations.push(reference);
  } else {
    return [];
  }
  for (const orgRef of organizations) {
    const org = parseLiteral(orgRef);
    const organization = org ? ((await store.find(org[0], org[1])) as Organization | undefined) : undefined;
    if (organization?.active !== false) endpointRefs.push(...(organization?.endpoint ?? []).map((e) => e.reference ?? ''));
  }
  const found: ProviderEndpoint[] = [];
  for (const ref of [...new Set(endpointRefs)]) {
    const target = parseLiteral(ref);
    if (!target || target[0] !== 'Endpoint') continue;
    const endpoint = (await store.find('Endpoint', target[1])) as Endpoint | undefined;
    if (!endpoint || endpoint.status !== 'active' || !endpoint.address) continue;
    if (!endpoint.connectionType?.code || endpoint.connectionType.code !== FHIR_REST) continue;
    const address = trimBase(endpoint.address);
    if (!found.some((f) => f.address === address)) found.push({ address, endpoint: ref });
  }
  return found;
}
