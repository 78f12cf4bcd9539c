import { randomUUID } from 'node:crypto';
import type { Coding, Communication, DocumentReference, Patient, Reference, ServiceRequest } from 'fhir/r4.js';
import { localDate } from '../domain/clock.js';
import { type Audience, type LetterFacts, type LetterKind, letterLanguage, renderLetter } from '../domain/letters.js';
import type { PlanProfile } from '../domain/plans.js';
import { EXTENSIONS, PROFILES } from '../fhir/systems.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { grievancePartyTags } from './grievanceAccess.js';
import type { ProviderDelivery } from './providerDelivery.js';

export const patientName = (p: Patient): string => [p.name?.[0]?.given?.join(' '), p.name?.[0]?.family].filter(Boolean).join(' ') || 'Member';

type LetterParties = { plan: PlanProfile; patient: Patient; recipients: Reference[]; sender: Reference; now: Date } & (
  | { serviceRequest: ServiceRequest }
  /** What a letter answers when it is not a case's request: a grievance's Task (R17). */
  | { regarding: Reference }
);

/** The language the request asks letters in (the preferred-language extension the requester set), if any. */
const requestedLanguage = (c: LetterParties): string | undefined =>
  'serviceRequest' in c ? c.serviceRequest.extension?.find((e) => e.url === EXTENSIONS.preferredLanguage)?.valueCode : undefined;

const regardingOf = (c: LetterParties): Reference => ('regarding' in c ? c.regarding : { reference: `ServiceRequest/${c.serviceRequest.id}` });

/** A grievance's letters are its parties' only (workflow/grievanceAccess.ts): the plan that sends them, the member, each recipient. */
const restriction = (c: LetterParties): { tag: Coding[] } | undefined =>
  'regarding' in c ? { tag: grievancePartyTags([c.sender, { reference: `Patient/${c.patient.id}` }, ...c.recipients].map((r) => r.reference).filter((r): r is string => Boolean(r))) } : undefined;

/** A letter not yet stored: its DocumentReferences (rendered HTML), a Communication per recipient, and the references for the case Task's output. */
export interface ComposedLetter {
  /** The letter of each audience sent it: the member's first, then the provider copy. */
  documents: DocumentReference[];
  /** A sending per recipient, referring to their audience's letter. */
  communications: Communication[];
  /** The documents, then the communications: what to store. */
  resources: (DocumentReference | Communication)[];
  refs: Reference[];
  /** Hands the Communications to providers' FHIR endpoints (members read theirs here); call once they are stored, in the same transaction. */
  deliver(tx: FhirStore, delivery?: ProviderDelivery): Promise<void>;
}

/** The member and their representative read the member's letter; professionals and organizations the provider copy (R10, BSP D.V). */
const audienceOf = (recipient: Reference): Audience => (/^(Patient|RelatedPerson)\//.test(recipient.reference ?? '') ? 'member' : 'provider');

/** One rendered letter for one audience, as a DocumentReference about the member and the request. */
function letterDocument(kind: LetterKind, c: LetterParties, facts: LetterFacts): DocumentReference {
  const { title, html } = renderLetter(kind, facts);
  const report = kind === 'report';
  return {
    resourceType: 'DocumentReference',
    id: randomUUID(),
    meta: restriction(c),
    status: 'current',
    type: { coding: [{ system: 'http://loinc.org', code: report ? '11488-4' : '51852-2', display: report ? 'Consult note' : 'Letter' }], text: title },
    // A provider's copy says so, so that a member's view of their letters can tell it from theirs.
    category: [{ text: report ? 'consultation-report' : 'notice' }, ...(facts.audience === 'provider' ? [{ text: 'provider-copy' }] : [])],
    subject: { reference: `Patient/${c.patient.id}` },
    date: c.now.toISOString(),
    author: [c.sender],
    description: title,
    content: [{ attachment: { contentType: 'text/html', language: facts.language, title, data: Buffer.from(html).toString('base64') } }],
    context: { related: [regardingOf(c)] },
  };
}

function sending(kind: LetterKind, c: LetterParties, recipient: Reference, doc: DocumentReference): Communication {
  return {
    resourceType: 'Communication',
    id: randomUUID(),
    meta: { profile: [PROFILES.decisionNotice], ...restriction(c) },
    status: 'completed',
    category: [{ text: kind }],
    basedOn: [regardingOf(c)],
    subject: { reference: `Patient/${c.patient.id}` },
    recipient: [recipient],
    sender: c.sender,
    sent: c.now.toISOString(),
    payload: [{ contentReference: { reference: `DocumentReference/${doc.id}`, display: doc.description } }],
  };
}

/**
 * Renders a letter and its sendings (R10, R11, R14) with their ids assigned, for the caller to store: the
 * member's letter, and a provider copy of the same facts worded about "your patient" when a provider is
 * sent it, each in the member's language, so that what the provider reads is what the member was told.
 */
export function composeLetter(kind: LetterKind, c: LetterParties, facts: Partial<LetterFacts>): ComposedLetter {
  const preferred = c.patient.communication?.find((x) => x.preferred)?.language.coding?.[0]?.code ?? c.patient.communication?.[0]?.language.coding?.[0]?.code;
  const language = letterLanguage(c.plan, requestedLanguage(c), preferred);
  const audiences = (['member', 'provider'] as const).filter((a) => c.recipients.some((r) => audienceOf(r) === a));
  const byAudience = new Map(audiences.map((audience) => [audience, letterDocument(kind, c, { plan: c.plan, language, memberName: patientName(c.patient), date: localDate(c.plan, c.now), ...facts, audience })]));
  const documents = [...byAudience.values()];
  const communications = c.recipients.map((recipient) => sending(kind, c, recipient, byAudience.get(audienceOf(recipient))!));
  return {
    documents,
    communications,
    resources: [...documents, ...communications],
    refs: [...documents.map((d) => ({ reference: `DocumentReference/${d.id}`, display: d.description })), ...communications.map((x) => ({ reference: `Communication/${x.id}` }))],
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
