import type { AccessPolicy } from './fhir/context.js';
import { createOutbound } from './outbound/index.js';
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
export async function buildParts(env: PartsEnv): Promise<ServerParts> {
  const outbound = await createOutbound({
    store: env.store,
    registry: env.registry,
    fhirBase: env.fhirBase,
    logger: env.logger,
    config: env.config.outboundConfigFile,
  });
  env.store.addWriteHook(outbound.writeHook);
  return {
    policy: denyAll,
    operations: [...outbound.operations],
    workers: env.config.outboxEnabled ? outbound.workers : [],
  };
}
