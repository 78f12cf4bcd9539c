import FHIR from 'fhirclient';

/** SMART launch: EHR launch (iss + launch from the EHR) or standalone for members and plan staff (?mode=member|staff|consultant|grievances, and for the grievance desk ?pageSize=). */
const params = new URLSearchParams(location.search);
const mode = params.get('mode') ?? (params.get('launch') ? 'physician' : 'member');
sessionStorage.setItem('so-mode', mode);
// The grievance desk's page size (`pageSize`, 1-100; grievances.ts deskPageSize).
const pageSize = params.get('pageSize');
if (pageSize) sessionStorage.setItem('so-page-size', pageSize);
else sessionStorage.removeItem('so-page-size');
const scopes: Record<string, string> = {
  physician: 'launch openid fhirUser patient/*.rs user/*.rs user/ServiceRequest.crus user/CoverageEligibilityRequest.c user/Task.rs user/DocumentReference.crs',
  member: 'launch/patient openid fhirUser patient/*.rs patient/ServiceRequest.c patient/CoverageEligibilityRequest.c patient/Task.c',
  staff: 'openid fhirUser user/*.rs user/Task.u',
  consultant: 'openid fhirUser user/*.rs user/DocumentReference.c',
  grievances: 'openid fhirUser user/*.rs user/Task.u',
};
void FHIR.oauth2.authorize({ clientId: 'second-opinion-app', scope: scopes[mode] ?? scopes.member, redirectUri: 'index.html' });
