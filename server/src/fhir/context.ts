import type { OperationOutcomeIssue, Resource } from 'fhir/r4.js';
import type { FhirStore, SearchClause } from '../storage/FhirStore.js';
import type { AccessContext, FhirRequest, FhirResponse } from './request.js';
import type { Indexer } from './search/indexer.js';
import type { SearchParamRegistry } from './search/registry.js';

export type Interaction = 'read' | 'vread' | 'search' | 'history' | 'create' | 'update' | 'patch' | 'delete' | 'operation';

/** Scope and compartment checks (implemented in auth/accessPolicy.ts, pure). */
export interface AccessPolicy {
  requireScope(ctx: AccessContext, resourceType: string, interaction: Interaction): void;
  /** 'Patient/x' when the caller may use this interaction on resources of this type only in that patient's compartment. */
  patientCompartment(ctx: AccessContext, resourceType: string, interaction: Interaction): string | undefined;
  /**
   * Resource-level check after a read or before a write: `compartmentsOf` gives the patients it belongs to,
   * asked only when the grant of that interaction is bound to a patient.
   */
  mayAccess(ctx: AccessContext, resourceType: string, interaction: Interaction, compartmentsOf: () => string[]): boolean;
  /**
   * The query-restricted v2 scopes (`patient/Observation.rs?category=laboratory`) that grant a read or search of
   * the type, each with the patient compartment it is bound to. Consulted only where no scope grants the whole type.
   */
  restrictedGrants?(ctx: AccessContext, resourceType: string, interaction: 'read' | 'search'): RestrictedGrant[];
}

/** Part of a type granted by a query-restricted scope: the resources its query matches, in `compartment` if set. */
export interface RestrictedGrant {
  query: [string, string][];
  compartment?: string;
}

/**
 * A resource type's own rule on who may see and change each resource, on top of scopes and
 * compartments (a Subscription is the client's that made it). The module that owns the type
 * registers it (compose.ts), so the FHIR layer itself has no special cases. Asked only with auth on.
 */
export interface ResourceAccessRule {
  /** A create or update body of the type, before the interaction runs: refuses it (FhirError) or completes it (an owner tag). */
  prepareWrite?(req: FhirRequest & { auth: AccessContext }, ctx: FhirContext, resource: Resource): Resource;
  /** Whether the caller may use req.interaction on this resource: asked wherever guard.mayAccess is. */
  mayAccess(req: FhirRequest & { auth: AccessContext }, ctx: FhirContext, resource: Resource): boolean;
  /** Clauses that hold a search of the type to what mayAccess shows, so totals and pages stay right. */
  searchClauses(req: FhirRequest & { auth: AccessContext }, ctx: FhirContext): SearchClause[];
  /** The resource as this caller is shown it (secrets masked): every response body and Bundle entry. */
  present?(auth: AccessContext, resource: Resource): Resource;
}

export interface ValidationOptions {
  /**
   * Also check the profiles the resource claims (the default). Off for what an operation is sent: the
   * operation completes it and stores it with the server's profiles (a report gets its subject and author).
   */
  claimedProfiles?: boolean;
}

export interface ResourceValidator {
  /** Issues with severity error or fatal mean the resource is refused (422). */
  validate(resource: Resource, options?: ValidationOptions): OperationOutcomeIssue[];
}

export interface AuditRecord {
  /**
   * `login`: the OAuth endpoints and bearer-token checks; `refused`: a request refused before routing; `export`: the
   * server sending a record to another system (a provider's FHIR server, a Subscription's endpoint).
   */
  interaction: Interaction | 'batch' | 'transaction' | 'capabilities' | 'login' | 'refused' | 'export';
  resourceType?: string;
  /** The OAuth client when there is no verified access token (token endpoint, refused tokens). */
  clientId?: string;
  /** A failure whatever the status (an OAuth error sent as a redirect). */
  failed?: boolean;
  id?: string;
  operation?: string;
  patient?: string;
  status: number;
  /** The status (404) answers an access refused, as if the id did not exist (`concealedRefusal`). */
  concealedRefusal?: boolean;
  auth?: AccessContext;
  query?: string;
  /** For `export`: where the record went (the receiving endpoint's URL). */
  destination?: string;
}

export interface AuditSink {
  /** A promise when the request should wait for it before answering (the audit log is behind). */
  record(event: AuditRecord): Promise<void> | undefined;
}

export interface OperationArgs {
  resourceType?: string;
  id?: string;
}

/** A custom operation: one file per operation under fhir/operations/. */
export interface OperationDefinitionEntry {
  name: string;
  levels: ('system' | 'type' | 'instance')[];
  /** Resource types it applies to (ignored for system level). */
  resourceTypes: string[];
  /** The interaction whose scope the caller needs on the resource type. */
  interaction: Interaction;
  /** True for operations that change data (POST only). */
  affectsState: boolean;
  /** Canonical URL of the OperationDefinition. */
  definition: string;
  handler(req: FhirRequest, ctx: FhirContext, args: OperationArgs): Promise<FhirResponse>;
}

/** Everything a FHIR handler needs; no Express. */
export interface FhirContext {
  store: FhirStore;
  registry: SearchParamRegistry;
  indexer: Indexer;
  validator?: ResourceValidator;
  policy: AccessPolicy;
  audit: AuditSink;
  operations: OperationDefinitionEntry[];
  limits: { maxBundleEntries: number };
  /** Our profiles per resource type (CapabilityStatement supportedProfile). */
  supportedProfiles?: Map<string, string[]>;
  /**
   * Creates of a type that start a workflow instead of a plain store (a ServiceRequest with the
   * second-opinion profile starts the same workflow as `$submit`); undefined means "store as usual".
   */
  createInterceptors?: Record<string, (req: FhirRequest, ctx: FhirContext, resource: Resource) => Promise<FhirResponse | undefined>>;
  /** Per resource type: who may see and change each resource (see ResourceAccessRule). */
  accessRules?: Record<string, ResourceAccessRule>;
  /**
   * The Patients whose records (the patient compartment's types) the caller may see and change, as a clause on
   * Patient; undefined when the caller is not so limited (workflow/memberAccess.ts, registered in compose.ts).
   */
  visiblePatients?: (auth: AccessContext) => SearchClause | undefined;
  /** Called with errors that became a 500, for the log (never sent to the client). */
  onUnexpectedError?: (err: unknown) => void;
}
