import { randomUUID } from 'node:crypto';
import type { Communication, DocumentReference, Patient, Reference, ServiceRequest } from 'fhir/r4.js';
import { localDate } from '../domain/clock.js';
import { type LetterFacts, type LetterKind, letterLanguage, renderLetter } from '../domain/letters.js';
import type { PlanProfile } from '../domain/plans.js';
import { PROFILES } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';
import type { ProviderDelivery } from './providerDelivery.js';

export const patientName = (p: Patient): string => [p.name?.[0]?.given?.join(' '), p.name?.[0]?.family].filter(Boolean).join(' ') || 'Member';

type LetterParties = { plan: PlanProfile; patient: Patient; serviceRequest: ServiceRequest; recipients: Reference[]; sender: Reference; now: Date };

/** A letter not yet stored: the DocumentReference (rendered HTML), a Communication per recipient, and the references for the case Task's output. */
export interface ComposedLetter {
  resources: [DocumentReference, ...Communication[]];
  refs: Reference[];
  /** Hands the Communications to providers' FHIR endpoints (members read theirs here); call once they are stored, in the same transaction. */
  deliver(tx: FhirStore, delivery?: ProviderDelivery): Promise<void>;
}

/** Renders a letter and its sendings (R10, R11, R14) with their ids assigned, for the caller to store. */
export function composeLetter(kind: LetterKind, c: LetterParties, facts: Partial<LetterFacts>): ComposedLetter {
  const preferred = c.patient.communication?.find((x) => x.preferred)?.language.coding?.[0]?.code ?? c.patient.communication?.[0]?.language.coding?.[0]?.code;
  const language = letterLanguage(c.plan, preferred);
  const { title, html } = renderLetter(kind, { plan: c.plan, language, audience: 'member', memberName: patientName(c.patient), date: localDate(c.plan, c.now), ...facts });
  const doc: DocumentReference = {
    resourceType: 'DocumentReference',
    id: randomUUID(),
    status: 'current',
    type: { coding: [{ system: 'http://loinc.org', code: kind === 'report' ? '11488-4' : '51852-2', display: kind === 'report' ? 'Consult note' : 'Letter' }], text: title },
    category: [{ text: kind === 'report' ? 'consultation-report' : 'notice' }],
    subject: { reference: `Patient/${c.patient.id}` },
    date: c.now.toISOString(),
    author: [c.sender],
    description: title,
    content: [{ attachment: { contentType: 'text/html', language, title, data: Buffer.from(html).toString('base64') } }],
    context: { related: [{ reference: `ServiceRequest/${c.serviceRequest.id}` }] },
  };
  const communications = c.recipients.map((recipient): Communication => ({
    resourceType: 'Communication',
    id: randomUUID(),
    meta: { profile: [PROFILES.decisionNotice] },
    status: 'completed',
    category: [{ text: kind }],
    basedOn: [{ reference: `ServiceRequest/${c.serviceRequest.id}` }],
    subject: { reference: `Patient/${c.patient.id}` },
    recipient: [recipient],
    sender: c.sender,
    sent: c.now.toISOString(),
    payload: [{ contentReference: { reference: `DocumentReference/${doc.id}`, display: title } }],
  }));
  return {
    resources: [doc, ...communications],
    refs: [{ reference: `DocumentReference/${doc.id}`, display: title }, ...communications.map((x) => ({ reference: `Communication/${x.id}` }))],
    async deliver(tx, delivery) {
      for (const [i, communication] of communications.entries()) {
        const recipient = c.recipients[i];
        if (!recipient.reference?.startsWith('Patient/')) await delivery?.deliver(tx, recipient, communication);
      }
    },
  };
}

/** Stores a letter and its sendings in one statement and delivers it; returns the references for the case Task's output. */
export async function sendLetter(tx: FhirStore, kind: LetterKind, c: LetterParties & { delivery?: ProviderDelivery }, facts: Partial<LetterFacts>): Promise<Reference[]> {
  const letter = composeLetter(kind, c, facts);
  await tx.createMany(letter.resources);
  await letter.deliver(tx, c.delivery);
  return letter.refs;
}
