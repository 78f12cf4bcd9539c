import { type FhirError, methodNotAllowed } from './outcomes.js';

/**
 * The resource types this server stores and serves. Adding a type is one line here; routing,
 * search parameters, the CapabilityStatement and storage follow from it.
 */
export const CLINICAL_TYPES = [
  'Patient',
  'RelatedPerson',
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'Location',
  'Endpoint',
  'CareTeam',
  'Coverage',
  'ServiceRequest',
  'Task',
  'CoverageEligibilityRequest',
  'CoverageEligibilityResponse',
  'Condition',
  'DocumentReference',
  'DiagnosticReport',
  'Communication',
  'Provenance',
  'AuditEvent',
  'Subscription',
  'MeasureReport',
  'Basic',
  'Binary',
  'Parameters',
] as const;

/** Conformance resources: loaded from profiles/ and served read-only. */
export const CONFORMANCE_TYPES = [
  'StructureDefinition',
  'CodeSystem',
  'ValueSet',
  'SearchParameter',
  'OperationDefinition',
  'PlanDefinition',
  'Library',
  'CapabilityStatement',
  'TerminologyCapabilities',
  'Measure',
] as const;

export const RESOURCE_TYPES: readonly string[] = [...CLINICAL_TYPES, ...CONFORMANCE_TYPES].filter(
  (t) => t !== 'Parameters' && t !== 'Binary',
);

const known = new Set<string>(RESOURCE_TYPES);
export const isSupportedType = (type: string): boolean => known.has(type);

/** Conformance resources the server publishes; clients may read and search them but not change them. */
const readOnly = new Set<string>(CONFORMANCE_TYPES);
export const isReadOnlyType = (type: string): boolean => readOnly.has(type);

/** The audit trail: clients may add AuditEvents and read them, never change or delete one. */
export const isAppendOnlyType = (type: string): boolean => type === 'AuditEvent';

/** The refusal of a change to an append-only type (405), wherever it is caught. */
export const appendOnlyRefusal = (type: string): FhirError => methodNotAllowed(`${type} resources are an append-only audit trail: they cannot be changed or deleted`);

/**
 * The provider directory: users' roles and plans come from it (PractitionerRole.code, .organization), and
 * deliveries go to its Endpoints. Only plan administration (a plan-admin user or system client) writes it.
 */
const directory = new Set(['Practitioner', 'PractitionerRole', 'Organization', 'Location', 'Endpoint']);
export const isDirectoryType = (type: string): boolean => directory.has(type);
