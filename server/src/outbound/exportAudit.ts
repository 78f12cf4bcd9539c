import type { Resource } from 'fhir/r4.js';
import type { AuditSink } from '../fhir/context.js';
import { parseLiteral, referencesIn, relativeToBase } from '../fhir/references.js';
import { httpStatusOf } from './errors.js';

/** Where a record of ours went, what it was (`Type/id` here) and the member it is about. */
export interface Export {
  record: string;
  patient?: string;
  destination: string;
}

/**
 * Every disclosure to another system leaves an AuditEvent (DICOM Export, with the receiving endpoint), as every
 * access through the API does: sent (`status`, the receiver's answer) or not (`error`, the failure). The worker
 * does not wait for the audit log.
 */
export function auditExport(audit: AuditSink | undefined, sent: Export, outcome: { status: number } | { error: unknown }): void {
  const [resourceType, id] = parseLiteral(sent.record) ?? [];
  const status = 'status' in outcome ? outcome.status : (httpStatusOf(outcome.error) ?? 0);
  void audit?.record({ interaction: 'export', resourceType, id, patient: sent.patient, destination: sent.destination, status, failed: 'error' in outcome });
}

/** The member a copy is about: the first Patient of ours it names, by absolute URL or relatively. */
export function patientNamed(resource: Resource, fhirBase: string): string | undefined {
  return referencesIn(resource)
    .map(([, ref]) => parseLiteral(relativeToBase(fhirBase, ref)))
    .find((literal) => literal?.[0] === 'Patient')
    ?.join('/');
}
