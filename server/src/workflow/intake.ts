import { randomUUID } from 'node:crypto';
import type { Bundle, Identifier, Patient, Resource, ServiceRequest } from 'fhir/r4.js';
import { badRequest, FhirError, outcome, unprocessable } from '../fhir/outcomes.js';
import { parseLiteral, referencesIn, rewriteReferences } from '../fhir/references.js';
import { IDENTIFIER_SYSTEMS } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';

/** The submitted Bundle, split into the request and the resources it brings along. */
export interface Submission {
  serviceRequest: ServiceRequest;
  /** fullUrl (or `Type/id`) → resource and its place in the Bundle, for everything else in the Bundle. */
  included: Map<string, { resource: Resource; path: string }>;
}

/** What the caller's token allows (SMART scopes and the patient compartment, through fhir/guard.ts). */
export interface IntakeAccess {
  /** Throws (403) when the caller may not create a resource of this type. */
  authorize(resource: Resource): void;
  /** False when the resource is outside the caller's patient compartment. */
  mayAccess(resource: Resource): boolean;
  /** `Patient/x` for each patient compartment the resource belongs to. */
  compartmentsOf(resource: Resource): string[];
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
  const included: Submission['included'] = new Map();
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
    included.set(key, { resource, path: `Bundle.entry[${i}].resource` });
  }
  if (!serviceRequest) throw badRequest(bundle.entry?.length ? 'The Bundle holds no ServiceRequest' : 'The Bundle has no entry: it needs one holding the second-opinion ServiceRequest', 'Bundle.entry');
  return { serviceRequest, included };
}

/** The operations hand over their `bundle` input (fhir/operations/submit.ts, as their OperationDefinitions declare it). */
function unwrapBundle(body: unknown): Bundle {
  if ((body as { resourceType?: string } | undefined)?.resourceType === 'Bundle') return body as Bundle;
  throw badRequest('$submit takes a Bundle holding the ServiceRequest and what it references', 'resourceType');
}


/** The submission with its participants matched to stored resources (nothing written yet). */
export interface Resolution {
  /** The request, every reference to a Bundle entry rewritten to the stored (or to-be-stored) resource. */
  serviceRequest: ServiceRequest;
  /** Entries new to the server, with their ids and rewritten references, and their place in the Bundle. */
  toCreate: { resource: Resource; path: string }[];
  /** `Type/id` → resource, for every entry: the stored one it matched, or the new one. */
  found: Map<string, Resource>;
}

/**
 * Matches the submitted participants to stored ones (CIN and member id for members, NPI for
 * professionals) and rewrites every reference of the request to stored ids. Writes nothing.
 * An entry the caller may not access, whether matched or new, is refused with the same 403, before any
 * fact of a matched resource is compared: a patient-bound token cannot map a CIN to a Patient id or
 * confirm a birth date (probe F12). A match with conflicting facts (same CIN, other birth date) is a 422.
 */
export async function matchSubmission(tx: FhirStore, submission: Submission, access: IntakeAccess): Promise<Resolution> {
  const targets = new Map<string, string>();
  const found = new Map<string, Resource>();
  const entries: { submitted: Resource; resource: Resource; path: string; matched: boolean }[] = [];
  for (const [key, { resource: submitted, path }] of submission.included) {
    const existing = ALWAYS_NEW.has(submitted.resourceType) ? undefined : await matchExisting(tx, submitted);
    const resource = existing ?? ({ ...submitted, id: randomUUID() } as Resource);
    const ref = `${resource.resourceType}/${resource.id}`;
    targets.set(key, ref);
    found.set(ref, resource);
    entries.push({ submitted, resource, path, matched: Boolean(existing) });
  }
  const rewrite = (ref: string) => targets.get(ref);
  for (const entry of entries) if (!entry.matched) rewriteReferences(entry.resource, rewrite);
  // In Bundle order, after rewriting (a new Condition's subject is then the member's id).
  for (const entry of entries) {
    if (!access.mayAccess(entry.resource)) throw outsideCompartment(entry.path, `${entry.path} (a ${entry.resource.resourceType}) is outside the patient compartment of this token`);
    if (entry.matched) checkConsistent(entry.submitted, entry.resource);
    else access.authorize(entry.resource);
  }
  const serviceRequest = structuredClone(submission.serviceRequest);
  rewriteReferences(serviceRequest, rewrite);
  return { serviceRequest, toCreate: entries.filter((e) => !e.matched).map(({ resource, path }) => ({ resource, path })), found };
}

/**
 * Checks every reference of the matched submission (probe F6), then stores the new entries. Returns the
 * request and what each of its references points at (read once, reused by the decision's facts).
 */
export async function storeSubmission(tx: FhirStore, resolution: Resolution, access: IntakeAccess): Promise<{ serviceRequest: ServiceRequest; stored: Resource[]; referenced: Map<string, Resource> }> {
  const referenced = await checkReferences(tx, resolution, access);
  const stored: Resource[] = [];
  for (const { resource } of resolution.toCreate) {
    const saved = await tx.create(resource);
    referenced.set(`${saved.resourceType}/${saved.id}`, saved);
    stored.push(saved);
  }
  return { serviceRequest: resolution.serviceRequest, stored, referenced };
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

/** Runs only on a match the caller may access, so naming the matched Patient tells them nothing new. */
function checkConsistent(submitted: Resource, existing: Resource): void {
  if (submitted.resourceType !== 'Patient') return;
  const a = submitted as Patient;
  const b = existing as Patient;
  if (a.birthDate && b.birthDate && a.birthDate !== b.birthDate) {
    throw unprocessable(`Patient matched by identifier to Patient/${b.id} but the birth dates differ (${a.birthDate} submitted)`, ['Patient.birthDate']);
  }
}

/** One answer for "new", "does not exist" and "may not be accessed": which of them it is stays unknown to the caller. */
function outsideCompartment(path: string, diagnostics: string): FhirError {
  return new FhirError(403, outcome('error', 'forbidden', diagnostics, [path]));
}

/** Elements whose targets are the member's clinical record: they must be in the subject's compartment, whatever their type. */
const CLINICAL = /^ServiceRequest\.(reasonReference|supportingInfo)\[\d+\]$/;

/**
 * Every literal reference the submission keeps (the request's, any element, and the new entries') must
 * point at a resource the server has and the caller may access: 422 "unknown" for a caller who could
 * access such a resource were it there, else the 403 of `outsideCompartment` whether or not it exists
 * (probe F12). The request's targets in a patient compartment, and its reasons and supporting
 * information always, must be in the subject's compartment (422), as must the new entries: they are
 * copied into the case, which the member and the plan read (probe F6, BSP D.IX).
 */
async function checkReferences(tx: FhirStore, resolution: Resolution, access: IntakeAccess): Promise<Map<string, Resource>> {
  const referenced = new Map<string, Resource>();
  const resolve = async (path: string, ref: string): Promise<Resource | undefined> => {
    if (ref.startsWith('#')) return undefined; // contained: walked with the request itself
    const literal = parseLiteral(ref);
    if (!literal) throw unprocessable(`${path} '${ref}' does not resolve to a resource in the Bundle or on the server`, [path]);
    const target = referenced.get(ref) ?? resolution.found.get(ref) ?? (await tx.find(literal[0], literal[1]));
    if (target && access.mayAccess(target)) {
      referenced.set(ref, target);
      return target;
    }
    const placeholder = { resourceType: literal[0], id: literal[1] } as Resource;
    if (!target && access.mayAccess(placeholder)) throw unprocessable(`${path} refers to unknown ${ref}`, [path]);
    throw outsideCompartment(path, `${path} refers to ${ref}, which does not exist or is outside the patient compartment of this token`);
  };
  const { serviceRequest } = resolution;
  if (parseLiteral(serviceRequest.subject?.reference)?.[0] !== 'Patient') {
    throw unprocessable('ServiceRequest.subject must be the member (a Patient)', ['ServiceRequest.subject']);
  }
  const patient = await resolve('ServiceRequest.subject', serviceRequest.subject.reference!);
  const subject = `Patient/${patient!.id}`;
  for (const [path, ref] of referencesIn(serviceRequest, 'ServiceRequest')) {
    const target = await resolve(path, ref);
    if (!target) continue;
    const compartments = access.compartmentsOf(target);
    if (compartments.includes(subject) || (!compartments.length && !CLINICAL.test(path))) continue;
    throw unprocessable(`${path} (${ref}) is not in the record of the request's subject ${subject}`, [path]);
  }
  for (const { resource, path } of resolution.toCreate) {
    const compartments = access.compartmentsOf(resource);
    if (compartments.length && !compartments.includes(subject)) throw unprocessable(`${path} (a ${resource.resourceType}) is not in the record of the request's subject ${subject}`, [path]);
    for (const [refPath, ref] of referencesIn(resource, path)) await resolve(refPath, ref);
  }
  return referenced;
}
