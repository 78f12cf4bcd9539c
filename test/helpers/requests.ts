import { randomUUID } from 'node:crypto';
import type { Bundle, ServiceRequest } from 'fhir/r4.js';
import { CODE_SYSTEMS, IDENTIFIER_SYSTEMS } from '../../server/src/fhir/systems.js';

/**
 * A demo-data request approved on receipt under HPSJ (R3): member-hpsj-1's PCP asks for the opinion
 * of an in-network cardiologist, as a `$submit` Bundle.
 */
export const inNetworkHpsjRequest = (): Bundle => hpsjCardiologyRequest('PractitionerRole/role-hpsj-card-2');

/** member-hpsj-1's PCP asks for a cardiologist's opinion, of `performer` (out of network, it goes to UM review). */
export function hpsjCardiologyRequest(performer: string): Bundle {
  const sr: ServiceRequest = {
    resourceType: 'ServiceRequest',
    identifier: [{ system: IDENTIFIER_SYSTEMS.secondOpinionRequest, value: randomUUID() }],
    status: 'draft',
    intent: 'order',
    subject: { reference: 'Patient/member-hpsj-1' },
    requester: { reference: 'PractitionerRole/role-hpsj-pcp-1' },
    insurance: [{ reference: 'Coverage/coverage-member-hpsj-1' }],
    reasonCode: [{ coding: [{ system: CODE_SYSTEMS.reason, code: 'serious-condition' }] }],
    performerType: { coding: [{ system: CODE_SYSTEMS.nucc, code: '207RC0000X' }] },
    performer: [{ reference: performer }],
  };
  return { resourceType: 'Bundle', type: 'collection', entry: [{ resource: sr }] };
}
