import type { AccessPolicy } from './fhir/context.js';
import type { PartsEnv, ServerParts } from './server.js';

/** Until a token says otherwise, nobody may do anything (fail closed). */
const denyAll: AccessPolicy = {
  requireScope: () => {
    throw new Error('access policy not configured');
  },
  patientCompartment: () => undefined,
  mayAccess: () => false,
};

/** The composition root: every module the server runs with, wired in one place. */
export async function buildParts(_env: PartsEnv): Promise<ServerParts> {
  return { policy: denyAll };
}
