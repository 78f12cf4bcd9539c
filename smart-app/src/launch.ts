import FHIR from 'fhirclient';

/** SMART launch: EHR launch (iss + launch from the EHR) or standalone for members and plan staff (?mode=member|staff|consultant|grievances). */
const params = new URLSearchParams(location.search);
const mode = params.get('mode') ?? (params.get('launch') ? 'physician' : 'member');
sessionStorage.setItem('so-mode', mode);
const scopes: Record<string, string> = {
  physician: 'launch openid fhirUser patient/*.rs user/*.rs user/ServiceRequest.crus user/CoverageEligibilityRequest.c user/Task.rs user/DocumentReference.crs',
  member: 'launch/patient openid fhirUser patient/*.rs patient/ServiceRequest.c patient/CoverageEligibilityRequest.c patient/Task.c',
  staff: 'openid fhirUser user/*.rs user/Task.u',
  consultant: 'openid fhirUser user/*.rs user/DocumentReference.c',
  grievances: 'openid fhirUser user/*.rs user/Task.u',
};
void FHIR.oauth2.authorize({ clientId: 'second-opinion-app', scope: scopes[mode] ?? scopes.member, redirectUri: 'index.html' });
