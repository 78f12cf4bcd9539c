import type { Communication, DocumentReference, Reference, Resource } from 'fhir/r4.js';
import { parseLiteral, rewriteReferences } from '../fhir/references.js';
import { IDENTIFIER_SYSTEMS } from '../fhir/systems.js';
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

/** How a delivered copy names the resource of ours it copies, so that the provider's server keeps one copy of it. */
export const deliveredIdentifier = (resource: Resource): { system: string; value: string } => ({ system: IDENTIFIER_SYSTEMS.deliveredResource, value: `${resource.resourceType}/${resource.id}` });

/**
 * What a provider's server is sent, before the outbox makes it the receiver's copy (our id and version dropped,
 * `deliveredIdentifier` added: outbound/deliveries.ts forReceiver): its references name our resources absolutely (a
 * relative one would resolve against the provider's server, R4 references.html), and a Communication carries its
 * letter itself, not a reference to a document of ours.
 */
export async function deliverableCopy(tx: FhirStore, resource: Resource, fhirBase: string): Promise<Resource> {
  const copy = structuredClone(resource);
  if (copy.resourceType === 'Communication') await embedLetters(tx, copy as Communication);
  rewriteReferences(copy, (ref) => (parseLiteral(ref) ? `${fhirBase}/${ref}` : undefined));
  return copy;
}

async function embedLetters(tx: FhirStore, communication: Communication): Promise<void> {
  for (const payload of communication.payload ?? []) {
    const literal = parseLiteral(payload.contentReference?.reference);
    if (literal?.[0] !== 'DocumentReference') continue;
    const attachment = ((await tx.read('DocumentReference', literal[1])) as DocumentReference).content[0]?.attachment;
    if (!attachment) continue;
    delete payload.contentReference;
    payload.contentAttachment = attachment;
  }
}
