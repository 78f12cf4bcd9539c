import { randomUUID } from 'node:crypto';
import type { Bundle, Identifier, Patient, Resource, ServiceRequest } from 'fhir/r4.js';
import { badRequest, unprocessable } from '../fhir/outcomes.js';
import { parseLiteral, rewriteReferences } from '../fhir/references.js';
import { IDENTIFIER_SYSTEMS } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';

/** The submitted Bundle, split into the request and the resources it brings along. */
export interface Submission {
  serviceRequest: ServiceRequest;
  /** fullUrl (or `Type/id`) → resource, for everything else in the Bundle. */
  included: Map<string, Resource>;
}

/** Identifier systems that identify the same person or organization across systems. */
const MATCH_SYSTEMS: Record<string, string[]> = {
  Patient: [IDENTIFIER_SYSTEMS.mediCalCin, IDENTIFIER_SYSTEMS.planMemberId],
  Practitioner: [IDENTIFIER_SYSTEMS.npi],
  Organization: [IDENTIFIER_SYSTEMS.npi, IDENTIFIER_SYSTEMS.planId],
  Coverage: [IDENTIFIER_SYSTEMS.planMemberId, IDENTIFIER_SYSTEMS.mediCalCin],
  PractitionerRole: [IDENTIFIER_SYSTEMS.npi],
  RelatedPerson: [],
  Location: [],
  Endpoint: [],
};

/** Supporting information is always stored as sent (new records). */
const ALWAYS_NEW = new Set(['Condition', 'DocumentReference', 'DiagnosticReport', 'Observation', 'RelatedPerson', 'CareTeam', 'Binary']);

export function parseSubmission(body: unknown): Submission {
  const bundle = unwrapBundle(body);
  const included = new Map<string, Resource>();
  let serviceRequest: ServiceRequest | undefined;
  for (const [i, entry] of (bundle.entry ?? []).entries()) {
    const resource = entry.resource;
    if (!resource) throw badRequest(`Bundle.entry[${i}] has no resource`, `Bundle.entry[${i}]`);
    if (resource.resourceType === 'ServiceRequest') {
      if (serviceRequest) throw badRequest('The Bundle must hold exactly one ServiceRequest', `Bundle.entry[${i}]`);
      serviceRequest = resource as ServiceRequest;
      continue;
    }
    if (!(resource.resourceType in MATCH_SYSTEMS) && !ALWAYS_NEW.has(resource.resourceType)) {
      throw badRequest(`A ${resource.resourceType} cannot be submitted with a second-opinion request`, `Bundle.entry[${i}]`);
    }
    const key = entry.fullUrl ?? (resource.id ? `${resource.resourceType}/${resource.id}` : `urn:uuid:${randomUUID()}`);
    included.set(key, resource);
  }
  if (!serviceRequest) throw badRequest('The Bundle holds no ServiceRequest', 'Bundle.entry');
  return { serviceRequest, included };
}

function unwrapBundle(body: unknown): Bundle {
  const b = body as { resourceType?: string; parameter?: { name?: string; resource?: Resource }[] } | undefined;
  if (b?.resourceType === 'Bundle') return b as Bundle;
  if (b?.resourceType === 'Parameters') {
    const inner = b.parameter?.find((p) => p.resource?.resourceType === 'Bundle')?.resource;
    if (inner) return inner as Bundle;
  }
  throw badRequest('$submit takes a Bundle (or Parameters with a Bundle) holding the ServiceRequest and what it references', 'resourceType');
}

/**
 * Matches the submitted participants to stored ones (CIN and member id for members, NPI for
 * professionals), stores the new ones, and rewrites every reference of the request to stored ids.
 * A match with conflicting facts (same CIN, other birth date) is refused with 422.
 */
export async function resolveSubmission(tx: FhirStore, submission: Submission): Promise<{ serviceRequest: ServiceRequest; stored: Resource[]; referenced: Map<string, Resource> }> {
  const targets = new Map<string, string>();
  const toCreate: Resource[] = [];
  for (const [key, resource] of submission.included) {
    const existing = ALWAYS_NEW.has(resource.resourceType) ? undefined : await matchExisting(tx, resource);
    if (existing) {
      checkConsistent(resource, existing);
      targets.set(key, `${existing.resourceType}/${existing.id}`);
    } else {
      const id = randomUUID();
      targets.set(key, `${resource.resourceType}/${id}`);
      toCreate.push({ ...resource, id } as Resource);
    }
  }
  const rewrite = (ref: string) => targets.get(ref);
  for (const resource of toCreate) rewriteReferences(resource, rewrite);
  const serviceRequest = structuredClone(submission.serviceRequest);
  rewriteReferences(serviceRequest, rewrite);
  const stored: Resource[] = [];
  for (const resource of toCreate) stored.push(await tx.create(resource));
  const referenced = await checkLiteralTargets(tx, serviceRequest);
  return { serviceRequest, stored, referenced };
}

async function matchExisting(tx: FhirStore, resource: Resource): Promise<Resource | undefined> {
  const identifiers = ((resource as { identifier?: Identifier[] }).identifier ?? []).filter((i) => i.system && i.value && MATCH_SYSTEMS[resource.resourceType]?.includes(i.system));
  for (const identifier of identifiers) {
    const { resources } = await tx.search({
      resourceType: resource.resourceType,
      clauses: [{ kind: 'token', param: 'identifier', values: [`identifier|${identifier.system}|${identifier.value}`], not: false }],
      sort: [],
      count: 2,
      offset: 0,
      total: false,
    });
    if (resources.length > 1) throw unprocessable(`More than one ${resource.resourceType} has identifier ${identifier.system}|${identifier.value}`, [`${resource.resourceType}.identifier`]);
    if (resources[0]) return resources[0];
  }
  if (resource.id) return tx.find(resource.resourceType, resource.id);
  return undefined;
}

function checkConsistent(submitted: Resource, existing: Resource): void {
  if (submitted.resourceType !== 'Patient') return;
  const a = submitted as Patient;
  const b = existing as Patient;
  if (a.birthDate && b.birthDate && a.birthDate !== b.birthDate) {
    throw unprocessable(`Patient matched by identifier to Patient/${b.id} but the birth dates differ (${a.birthDate} submitted)`, ['Patient.birthDate']);
  }
}

/** Every literal reference the request keeps must point at something the server has: what each points at, by reference. */
async function checkLiteralTargets(tx: FhirStore, serviceRequest: ServiceRequest): Promise<Map<string, Resource>> {
  const referenced = new Map<string, Resource>();
  const fields: [string, string | undefined][] = [
    ['ServiceRequest.subject', serviceRequest.subject?.reference],
    ['ServiceRequest.requester', serviceRequest.requester?.reference],
    ...(serviceRequest.insurance ?? []).map((r, i): [string, string | undefined] => [`ServiceRequest.insurance[${i}]`, r.reference]),
    ...(serviceRequest.performer ?? []).map((r, i): [string, string | undefined] => [`ServiceRequest.performer[${i}]`, r.reference]),
    ...(serviceRequest.reasonReference ?? []).map((r, i): [string, string | undefined] => [`ServiceRequest.reasonReference[${i}]`, r.reference]),
    ...(serviceRequest.supportingInfo ?? []).map((r, i): [string, string | undefined] => [`ServiceRequest.supportingInfo[${i}]`, r.reference]),
  ];
  for (const [field, ref] of fields) {
    if (ref === undefined) continue;
    const literal = parseLiteral(ref);
    if (!literal) throw unprocessable(`${field} '${ref}' does not resolve to a resource in the Bundle or on the server`, [field]);
    const target = referenced.get(ref) ?? (await tx.find(literal[0], literal[1]));
    if (!target) throw unprocessable(`${field} refers to unknown ${ref}`, [field]);
    referenced.set(ref, target);
  }
  return referenced;
}
