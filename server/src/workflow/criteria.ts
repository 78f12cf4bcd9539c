import type { Library } from 'fhir/r4.js';
import { criteriaHtml, criteriaLines } from '../domain/criteria.js';
import { PLANS } from '../domain/plans.js';
import { CANONICAL_BASE } from '../fhir/systems.js';

/** R21: each plan's criteria as a FHIR Library (generated from the plan profile), published read-only. */
export function criteriaLibraries(publicUrl: string): Library[] {
  return PLANS.map((plan) => ({
    resourceType: 'Library',
    id: `second-opinion-criteria-${plan.id}`,
    url: `${CANONICAL_BASE}/Library/second-opinion-criteria-${plan.id}`,
    version: '0.1.0',
    name: `SecondOpinionCriteria${plan.id.toUpperCase()}`,
    title: `Second-opinion criteria: ${plan.name}`,
    status: 'active',
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/library-type', code: 'asset-collection' }] },
    publisher: plan.name,
    description: criteriaLines(plan).join(' '),
    relatedArtifact: [{ type: 'documentation', display: 'Human-readable criteria', url: `${publicUrl}/criteria/${plan.id}` }],
    content: [{ contentType: 'text/html', title: `Criteria (${plan.policy.number})`, data: Buffer.from(criteriaHtml(plan)).toString('base64') }],
  }));
}
