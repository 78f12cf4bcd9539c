/**
 * `npm run demo-token -- <role> [patient-id]`: prints, as its last line, a short-lived access token
 * for a demo user of that role, signed with the key of the server running on DATA_DIR. Demo only.
 */
import { issueAccessToken } from '../server/src/auth/accessTokens.js';
import { loadSigningKey } from '../server/src/auth/signingKeys.js';
import { loadConfig } from '../server/src/config.js';
import type { UserRole } from '../server/src/fhir/request.js';

const DEMO_USERS: Record<string, { fhirUser?: string; roles: UserRole[]; scope: string; patient?: string }> = {
  admin: { fhirUser: 'Practitioner/hpsj-md-1', roles: ['plan-admin', 'auditor'], scope: 'user/*.cruds' },
  'treating-provider': { fhirUser: 'Practitioner/hpsj-pcp-1', roles: ['treating-provider'], scope: 'launch openid fhirUser patient/*.rs user/*.cruds' },
  'um-clinician': { fhirUser: 'Practitioner/hpsj-um-1', roles: ['um-clinician'], scope: 'user/*.cruds' },
  'medical-director': { fhirUser: 'Practitioner/hpsj-md-1', roles: ['medical-director'], scope: 'user/*.cruds' },
  'second-opinion-provider': { fhirUser: 'Practitioner/hpsj-card-2', roles: ['second-opinion-provider'], scope: 'user/*.cruds' },
  member: { fhirUser: 'Patient/member-hpsj-1', roles: ['member'], scope: 'launch/patient openid fhirUser patient/*.cruds', patient: 'member-hpsj-1' },
};

const [role, patientArg] = process.argv.slice(2);
const config = loadConfig({ ...process.env, DEMO_MODE: process.env.DEMO_MODE ?? 'true' });
if (!config.demoMode) {
  process.stderr.write('demo-token refuses to run outside demo mode (DEMO_MODE=false)\n');
  process.exit(2);
}
const user = role ? DEMO_USERS[role] : undefined;
if (!user) {
  process.stderr.write(`usage: npm run demo-token -- <${Object.keys(DEMO_USERS).join('|')}> [patient-id]\n`);
  process.exit(2);
}
const patient = patientArg ?? user.patient;
if (role === 'member' && patientArg && patientArg !== user.patient) {
  process.stderr.write('A member token is bound to that member’s own record\n');
  process.exit(2);
}
const { token } = issueAccessToken(
  { issuer: config.publicUrl, fhirBase: config.fhirBase, key: loadSigningKey(config.dataDir), accessTokenSeconds: 900 },
  { clientId: 'demo-token', scope: user.scope, fhirUser: user.fhirUser, patient, roles: user.roles },
);
process.stdout.write(`# ${role}${patient ? ` (patient ${patient})` : ''}, valid 15 minutes, for ${config.fhirBase}\n${token}\n`);
