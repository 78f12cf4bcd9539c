import type { CodeSystem, Resource, TerminologyCapabilities } from 'fhir/r4.js';
import { CANONICAL_BASE } from '../systems.js';
import { META } from './definitions.js';

/** The id of the statements the server publishes about itself (CapabilityStatement/server, TerminologyCapabilities/server). */
export const SERVER_STATEMENT_ID = 'server';

/**
 * What `GET /metadata?mode=terminology` answers (R4 http.html#capabilities): the code systems the server publishes
 * (CodeSystem resources, read and searched like the other conformance resources). The server has no terminology
 * operations ($expand, $validate-code, $lookup, $subsumes, $translate) and no closure tables, so `expansion`,
 * `validateCode`, `translation` and `closure` are absent: R4 says a server supports what the statement names.
 */
export function terminologyCapabilities(conformance: Resource[]): TerminologyCapabilities {
  const codeSystems = conformance.filter((r): r is CodeSystem => r.resourceType === 'CodeSystem');
  return {
    resourceType: 'TerminologyCapabilities',
    id: SERVER_STATEMENT_ID,
    url: `${CANONICAL_BASE}/TerminologyCapabilities/${SERVER_STATEMENT_ID}`,
    name: 'SecondOpinionFhirServerTerminology',
    title: 'Terminology of the second-opinion FHIR server',
    ...META,
    description: 'The code systems this server publishes, each readable as a CodeSystem with its ValueSet of all its codes. The server runs no terminology operations: no $expand, $validate-code, $lookup, $subsumes or $translate, and no closure tables.',
    kind: 'instance',
    implementation: { description: 'Second medical opinion requests, UM review and notices' },
    codeSystem: codeSystems.map((cs) => ({ uri: cs.url, version: [{ code: cs.version, isDefault: true }] })),
  };
}
