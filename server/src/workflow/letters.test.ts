import type { Patient, ServiceRequest } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { planById } from '../domain/plans.js';
import { composeLetter } from './letters.js';

const plan = planById('hpsj')!;
const patient: Patient = { resourceType: 'Patient', id: 'm1', name: [{ given: ['Ana'], family: 'Ruiz' }] };
const serviceRequest: ServiceRequest = { resourceType: 'ServiceRequest', id: 'sr1', status: 'active', intent: 'order', subject: { reference: 'Patient/m1' } };
const letterHtml = (now: Date) => {
  const [doc] = composeLetter('approval', { plan, patient, serviceRequest, recipients: [{ reference: 'Patient/m1' }, { reference: 'PractitionerRole/r1' }], sender: { reference: 'Organization/hpsj' }, now }, { professionalName: 'Dr. X' }).resources;
  return Buffer.from(doc.content[0].attachment.data!, 'base64').toString('utf8');
};

describe('letters', () => {
  it('R11: a notice bears the date of sending in the plan\'s zone (appeal windows run from it), not the UTC date', () => {
    // 19:51 on 30 November in California is already 1 December in UTC.
    expect(letterHtml(new Date('2026-12-01T03:51:00Z'))).toContain('<p>2026-11-30</p>');
    expect(letterHtml(new Date('2026-07-01T06:59:00Z'))).toContain('<p>2026-06-30</p>'); // 23:59 PDT
    expect(letterHtml(new Date('2026-07-01T07:00:00Z'))).toContain('<p>2026-07-01</p>');
  });

  it('R11: one DocumentReference and a Communication per recipient, each referring to the letter', () => {
    const letter = composeLetter('approval', { plan, patient, serviceRequest, recipients: [{ reference: 'Patient/m1' }, { reference: 'PractitionerRole/r1' }], sender: { reference: 'Organization/hpsj' }, now: new Date() }, {});
    const [doc, ...sent] = letter.resources;
    expect(sent.map((c) => c.recipient?.[0].reference)).toEqual(['Patient/m1', 'PractitionerRole/r1']);
    expect(sent.every((c) => c.payload?.[0].contentReference?.reference === `DocumentReference/${doc.id}`)).toBe(true);
    expect(letter.refs.map((r) => r.reference)).toEqual([`DocumentReference/${doc.id}`, ...sent.map((c) => `Communication/${c.id}`)]);
  });
});
