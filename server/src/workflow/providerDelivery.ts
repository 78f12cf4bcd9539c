import type { Reference, Resource } from 'fhir/r4.js';
import type { FhirStore } from '../storage/FhirStore.js';

/**
 * Reaching providers' own FHIR servers (issue 7's outbox): implemented in compose.ts over
 * server/src/outbound; the workflow only says what should reach whom, inside its transaction.
 */
export interface ProviderDelivery {
  /** Queue `resource` for the recipient's FHIR endpoints, if they have any (exactly once in effect). */
  deliver(tx: FhirStore, recipient: Reference, resource: Resource): Promise<void>;
  /**
   * Place a CDex information request on the provider's server when they have an endpoint; returns
   * the local tracking Task reference, or undefined when the provider answers on our server.
   */
  requestInformation(tx: FhirStore, request: { recipient: Reference; serviceRequestId: string; patientId: string; patientIdentifier?: { system: string; value: string }; what: string[]; due?: string }): Promise<Reference | undefined>;
}
