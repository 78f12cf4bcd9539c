import type { DocumentReference, Patient, ServiceRequest } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { planById } from '../domain/plans.js';
import { EXTENSIONS } from '../fhir/systems.js';
import { composeLetter } from './letters.js';

const plan = planById('hpsj')!;
const patient: Patient = { resourceType: 'Patient', id: 'm1', name: [{ given: ['Ana'], family: 'Ruiz' }] };
const serviceRequest: ServiceRequest = { resourceType: 'ServiceRequest', id: 'sr1', status: 'active', intent: 'order', subject: { reference: 'Patient/m1' } };
const letterHtml = (now: Date) => {
  const [doc] = composeLetter('approval', { plan, patient, serviceRequest, recipients: [{ reference: 'Patient/m1' }, { reference: 'PractitionerRole/r1' }], sender: { reference: 'Organization/hpsj' }, now }, { professionalName: 'Dr. X' }).documents;
  return html(doc);
};
const html = (doc: DocumentReference) => Buffer.from(doc.content[0].attachment.data!, 'base64').toString('utf8');

describe('letters', () => {
  it('R11: a notice bears the date of sending in the plan\'s zone (appeal windows run from it), not the UTC date', () => {
    // 19:51 on 30 November in California is already 1 December in UTC.
    expect(letterHtml(new Date('2026-12-01T03:51:00Z'))).toContain('<p>2026-11-30</p>');
    expect(letterHtml(new Date('2026-07-01T06:59:00Z'))).toContain('<p>2026-06-30</p>'); // 23:59 PDT
    expect(letterHtml(new Date('2026-07-01T07:00:00Z'))).toContain('<p>2026-07-01</p>');
  });

  it('R10, R11 BSP D.V: the member\'s letter and a provider copy, and a Communication per recipient referring to the letter of its audience', () => {
    const recipients = [{ reference: 'Patient/m1' }, { reference: 'PractitionerRole/r1' }, { reference: 'RelatedPerson/rep1' }, { reference: 'Practitioner/p2' }];
    const letter = composeLetter('approval', { plan, patient, serviceRequest, recipients, sender: { reference: 'Organization/hpsj' }, now: new Date() }, { professionalName: 'Dr. X' });
    const [memberLetter, providerCopy] = letter.documents;
    expect(letter.documents).toHaveLength(2);
    expect(html(memberLetter)).toContain('Dear Ana Ruiz,');
    expect(html(providerCopy)).toContain('Regarding your patient Ana Ruiz');
    expect([memberLetter, providerCopy].map((d) => d.category?.map((c) => c.text))).toEqual([['notice'], ['notice', 'provider-copy']]);
    const sent = letter.communications;
    expect(sent.map((c) => c.recipient?.[0].reference)).toEqual(recipients.map((r) => r.reference));
    expect(sent.map((c) => c.payload?.[0].contentReference?.reference)).toEqual([memberLetter, providerCopy, memberLetter, providerCopy].map((d) => `DocumentReference/${d.id}`));
    expect(letter.resources).toEqual([...letter.documents, ...sent]);
    expect(letter.refs.map((r) => r.reference)).toEqual([...letter.documents.map((d) => `DocumentReference/${d.id}`), ...sent.map((c) => `Communication/${c.id}`)]);
    // A letter only the member is sent has no provider copy.
    expect(composeLetter('approval', { plan, patient, serviceRequest, recipients: [recipients[0]], sender: { reference: 'Organization/hpsj' }, now: new Date() }, {}).documents).toHaveLength(1);
  });

  it('R10: letters in the language the request asks for when the plan has letters in it, else the member\'s, else English', () => {
    const language = (requested: string | undefined, spoken: string | undefined) => {
      const member: Patient = { ...patient, communication: spoken ? [{ language: { coding: [{ system: 'urn:ietf:bcp:47', code: spoken }] }, preferred: true }] : undefined };
      const request: ServiceRequest = { ...serviceRequest, extension: requested ? [{ url: EXTENSIONS.preferredLanguage, valueCode: requested }] : undefined };
      const [doc] = composeLetter('approval', { plan, patient: member, serviceRequest: request, recipients: [{ reference: 'Patient/m1' }], sender: { reference: 'Organization/hpsj' }, now: new Date() }, { professionalName: 'Dr. X' }).documents;
      return doc.content[0].attachment.language;
    };
    expect(language('es', 'en')).toBe('es');
    expect(language('en', 'es')).toBe('en');
    // A language the plan has no letters in: the member's, then English.
    expect(language('ru', 'es')).toBe('es');
    expect(language('ru', undefined)).toBe('en');
    expect(language(undefined, 'es')).toBe('es');
    expect(language(undefined, undefined)).toBe('en');
  });
});
