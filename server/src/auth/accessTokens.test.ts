import { describe, expect, it } from 'vitest';
import { absoluteFhirUser } from './accessTokens.js';

describe('fhirUser in the id_token and in introspection', () => {
  it('is the user resource\'s absolute URL on the FHIR base; an absolute one stays as it is', () => {
    expect(absoluteFhirUser('https://plan.example/fhir', 'Practitioner/p1')).toBe('https://plan.example/fhir/Practitioner/p1');
    expect(absoluteFhirUser('https://plan.example/fhir', 'https://ehr.example/fhir/Practitioner/9')).toBe('https://ehr.example/fhir/Practitioner/9');
    expect(absoluteFhirUser('https://plan.example/fhir', undefined)).toBeUndefined();
  });
});
