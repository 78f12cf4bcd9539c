import type { Communication, CoverageEligibilityResponse, DocumentReference, Resource, ServiceRequest, Task } from 'fhir/r4.js';
import { CODE_SYSTEMS, EXTENSIONS, IDENTIFIER_SYSTEMS, PROFILES } from '../systems.js';

/** One example per profile, written to profiles/examples/ and validated against its profile in the tests. */
export function exampleResources(): Resource[] {
  const serviceRequest: ServiceRequest = {
    resourceType: 'ServiceRequest',
    id: 'example-second-opinion',
    meta: { profile: [PROFILES.serviceRequest] },
    identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: 'EX-2026-0001' }],
    status: 'active',
    intent: 'order',
    category: [{ coding: [{ system: CODE_SYSTEMS.serviceRequestCategory, code: 'second-opinion' }] }],
    priority: 'routine',
    subject: { reference: 'Patient/member-hpsj-1' },
    requester: { reference: 'PractitionerRole/role-hpsj-pcp-1' },
    insurance: [{ reference: 'Coverage/coverage-member-hpsj-1' }],
    reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'surgery-necessity' }], text: 'Valve replacement recommended; member unsure' }],
    performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '207RC0000X', display: 'Cardiovascular Disease' }] },
    performer: [{ reference: 'PractitionerRole/role-hpsj-card-2' }],
    authoredOn: '2026-11-16T10:00:00-08:00',
    extension: [
      { url: EXTENSIONS.careQuestioned, valueReference: { reference: 'PractitionerRole/role-hpsj-card-1' } },
      { url: EXTENSIONS.transportationNeeded, valueBoolean: true },
      {
        url: EXTENSIONS.crdCoverageInformation,
        extension: [
          { url: 'coverage', valueReference: { reference: 'Coverage/coverage-member-hpsj-1' } },
          { url: 'covered', valueCode: 'covered' },
          { url: 'pa-needed', valueCode: 'no-auth' },
          { url: 'date', valueDate: '2026-11-16' },
          { url: 'coverage-assertion-id', valueString: 'a3c9f0e2-1b7d-4f4e-9d55-0c2a1f6b7e11' },
        ],
      },
    ],
  };
  const response: CoverageEligibilityResponse = {
    resourceType: 'CoverageEligibilityResponse',
    id: 'example-second-opinion-answer',
    meta: { profile: [PROFILES.coverageEligibilityResponse] },
    status: 'active',
    purpose: ['auth-requirements'],
    patient: { reference: 'Patient/member-hpsj-1' },
    created: '2026-11-16T10:00:00-08:00',
    request: { reference: 'CoverageEligibilityRequest/example' },
    outcome: 'complete',
    disposition: 'Approved: no authorization is needed. R3 (HPSJ III.A): In network: no authorization is needed. R12 (HPSJ II.A): No cost to the member.',
    insurer: { reference: 'Organization/hpsj' },
    insurance: [{ coverage: { reference: 'Coverage/coverage-member-hpsj-1' }, inforce: true, item: [{ productOrService: { coding: [{ system: CODE_SYSTEMS.serviceRequestCategory, code: 'second-opinion' }] }, authorizationRequired: false, benefit: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/benefit-type', code: 'copay' }] }, allowedMoney: { value: 0, currency: 'USD' } }] }] }],
  };
  const task: Task = {
    resourceType: 'Task',
    id: 'example-second-opinion-case',
    meta: { profile: [PROFILES.task] },
    status: 'requested',
    businessStatus: { coding: [{ system: CODE_SYSTEMS.businessStatus, code: 'um-review' }] },
    intent: 'order',
    focus: { reference: 'ServiceRequest/example-second-opinion' },
    for: { reference: 'Patient/member-hpsj-1' },
    authoredOn: '2026-11-16T10:00:00-08:00',
    restriction: { period: { start: '2026-11-16T10:00:00-08:00', end: '2026-11-23T10:00:00-08:00' } },
  };
  const report: DocumentReference = {
    resourceType: 'DocumentReference',
    id: 'example-consultation-report',
    meta: { profile: [PROFILES.consultationReport] },
    status: 'current',
    type: { coding: [{ system: 'http://loinc.org', code: '11488-4', display: 'Consult note' }] },
    subject: { reference: 'Patient/member-hpsj-1' },
    author: [{ reference: 'Practitioner/hpsj-card-2' }],
    date: '2026-11-20T15:00:00-08:00',
    content: [{ attachment: { contentType: 'text/plain', data: Buffer.from('Second opinion: agree with valve replacement; recommend TEE before surgery.').toString('base64') } }],
    context: { related: [{ reference: 'ServiceRequest/example-second-opinion' }] },
  };
  const notice: Communication = {
    resourceType: 'Communication',
    id: 'example-decision-notice',
    meta: { profile: [PROFILES.decisionNotice] },
    status: 'completed',
    basedOn: [{ reference: 'ServiceRequest/example-second-opinion' }],
    subject: { reference: 'Patient/member-hpsj-1' },
    recipient: [{ reference: 'Patient/member-hpsj-1' }],
    sent: '2026-11-16T10:05:00-08:00',
    payload: [{ contentString: 'Your second opinion with Dr. Hanna Schmidt is approved, at no cost to you.' }],
  };
  return [serviceRequest, response, task, report, notice];
}
