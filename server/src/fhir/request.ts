import type { Resource } from 'fhir/r4.js';
import type { Interaction } from './context.js';

/** Roles of users of this server; a user/ token carries one or more (from the client or user registry). */
export const USER_ROLES = ['treating-provider', 'um-clinician', 'medical-director', 'second-opinion-provider', 'member', 'plan-admin', 'auditor', 'delegated-group', 'grievance-coordinator'] as const;
export type UserRole = (typeof USER_ROLES)[number];

/**
 * Who is calling, as established by the auth layer from a verified token. The FHIR layer never
 * sees the token itself.
 */
export interface AccessContext {
  /** 'system' for backend services (client_credentials), 'user'/'patient' for app launches. */
  kind: 'system' | 'user' | 'patient';
  clientId: string;
  /** Raw granted scopes, e.g. ['launch', 'patient/Task.rs', 'user/*.read']. */
  scopes: string[];
  /** e.g. 'Practitioner/pract-1', 'Patient/p1', 'RelatedPerson/r1'. */
  fhirUser?: string;
  /** Patient in context (launch/patient or the member's own record). */
  patient?: string;
  roles: UserRole[];
  /** Organization id a backend client acts for, from its registration (R18: a delegated group's system). */
  organization?: string;
  /**
   * The plans whose staff the user is (`Organization/<id>` of their active plan-staff PractitionerRoles), read from the
   * directory by the auth layer, not carried in the token; absent for other callers. What a plan keeps to its own staff
   * (its members' grievances) is shown by it.
   */
  staffOf?: string[];
  /** Token id for audit correlation. */
  tokenId?: string;
  /** The authorization grant the token comes from (a code and its refreshes), revoked together. */
  grantId?: string;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';

/** A FHIR request, free of Express; built in http/ and handled in fhir/. */
export interface FhirRequest {
  method: HttpMethod;
  /** Path segments after the FHIR base, e.g. ['Task', '123', '$approve']. */
  path: string[];
  /** Every query parameter with all its values in order. */
  query: [string, string][];
  body?: unknown;
  headers: {
    ifMatch?: string;
    ifNoneExist?: string;
    ifNoneMatch?: string;
    ifModifiedSince?: string;
    prefer?: string;
    contentType?: string;
  };
  /** FHIR base URL clients see, without trailing slash. */
  baseUrl: string;
  /** Undefined only when auth is disabled (never in production). */
  auth?: AccessContext;
  /** The interaction the router matched: the permission whose grants bind resource-level checks to a patient. */
  interaction?: Interaction;
  /** Set for entries of a batch/transaction Bundle. */
  inBundle?: boolean;
  /** Server-assigned id for a transaction POST entry whose `urn:uuid:` others refer to. */
  presetId?: string;
}

export interface FhirResponse {
  status: number;
  body?: Resource;
  headers?: Record<string, string>;
  /**
   * The meta.lastUpdated of the version a bodiless answer is about (a 304, `Prefer: return=minimal`): a Bundle
   * entry's lastModified keeps the milliseconds the Last-Modified header (an HTTP-date) drops.
   */
  lastUpdated?: string;
  /** A refused access answered as an id that does not exist would be (a DELETE's 204): the audit log records the refusal. */
  concealsRefusal?: boolean;
}

/** The media type of a JSON Patch (RFC 6902): a PATCH body, or the contentType of a PATCH entry's Binary in a Bundle. */
export const JSON_PATCH = 'application/json-patch+json';
