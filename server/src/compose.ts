import type { Resource } from 'fhir/r4.js';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { createAuthServer } from './auth/authServer.js';
import { appClient, demoBackendClient } from './auth/demoClients.js';
import { loadSigningKey } from './auth/signingKeys.js';
import { identify } from './auth/userDirectory.js';
import { TrustedIssuerSchema } from './auth/tokenEndpoint.js';
import { seedDemoData } from './demo/seed.js';
import { ourOperationDefinitions, publishConformance, readConformanceResources } from './fhir/conformance.js';
import { grievanceOperations } from './fhir/operations/grievance.js';
import { committeeReportOperation } from './fhir/operations/report.js';
import { reviewOperations } from './fhir/operations/review.js';
import { reportRouter } from './http/reportRoutes.js';
import { criteriaLibraries } from './workflow/criteria.js';
import { eligibilityCheckOperation, submitOnCreate, submitOperation } from './fhir/operations/submit.js';
import { Indexer } from './fhir/search/indexer.js';
import { aboutPatientsMatching, isRestrictionQuery } from './fhir/guard.js';
import type { AccessContext, UserRole } from './fhir/request.js';
import type { FhirStore } from './storage/FhirStore.js';
import { createOutbound, type Outbound } from './outbound/index.js';
import { appRouter } from './http/appRoutes.js';
import { metricsRouter } from './http/metricsRoutes.js';
import { deliverableCopy, deliveredIdentifier, type ProviderDelivery } from './workflow/providerDelivery.js';
import type { PartsEnv, ServerParts } from './server.js';
import { decideWithPlanRules } from './workflow/decide.js';
import { namePerformersOfEarlierGrievances } from './workflow/grievance.js';
import { grievanceAccessRule, grievanceRecordAccessRule } from './workflow/grievanceAccess.js';
import { patientsVisibleTo } from './workflow/memberAccess.js';
import { isPlanStaff, staffOrganizationsOf } from './workflow/planStaff.js';

/** The composition root: every module the server runs with, wired in one place. */
export async function buildParts(env: PartsEnv): Promise<ServerParts> {
  const { config } = env;
  // A Subscription's owner stands while its client is registered and its user still has a role, and its grant while it has
  // not ended (revoked, or its tokens expired: asked at notification time and by the scheduler, once `auth` exists).
  const ownerStands = async ({ clientId, user }: { clientId: string; user?: string }) =>
    (await auth.clients.get(clientId)) !== undefined && (user === undefined || ((await identify(env.store, user))?.roles.length ?? 0) > 0);
  const grantEnded = (grantId: string) => auth.hasGrantEnded(grantId);
  const indexer = new Indexer(env.registry);
  // A Subscription's events are about the members its owner may see now, as their searches are (no launch patient: no token).
  const ownerSees = async ({ clientId, user }: { clientId: string; user?: string }, resource: Resource, tx: FhirStore) => {
    const owner = await subscriptionOwnerAccess(tx, clientId, user);
    // An owner who no longer stands (no such client or user, no role) is left to ownerStands, which turns the Subscription off.
    const patients = owner && patientsVisibleTo({ ...owner, staffOf: isPlanStaff(owner) ? await staffOrganizationsOf(tx, owner) : undefined });
    return !patients || aboutPatientsMatching(indexer, tx, resource, patients);
  };
  /** A Subscription owner's access as a token of theirs would carry it (no scopes, no launch patient). */
  const subscriptionOwnerAccess = async (tx: FhirStore, clientId: string, user: string | undefined): Promise<AccessContext | undefined> => {
    if (!user) {
      const client = await auth.clients.get(clientId);
      return client && { kind: 'system', clientId, scopes: [], roles: client.system_roles as UserRole[], organization: client.organization };
    }
    const identity = await identify(tx, user);
    if (!identity?.roles.length) return undefined;
    return { kind: identity.roles.includes('member') ? 'patient' : 'user', clientId, scopes: [], fhirUser: user, roles: identity.roles, patient: identity.patient };
  };
  const outbound = await createOutbound({ store: env.store, registry: env.registry, fhirBase: env.fhirBase, logger: env.logger, config: config.outboundConfigFile, audit: env.audit, ownerStands, ownerSees, grantEnded });
  env.store.addWriteHook(outbound.writeHook);
  const delivery = providerDelivery(outbound, env.fhirBase);
  const auth = createAuthServer(env.store, {
    issuer: env.publicUrl,
    fhirBase: env.fhirBase,
    key: loadSigningKey(config.dataDir),
    demoMode: config.demoMode,
    sandboxEnabled: config.sandboxEnabled,
    clients: config.demoMode ? [appClient(env.publicUrl), demoBackendClient(config.dataDir).client] : [appClient(env.publicUrl)],
    clientsFile: config.clientsFile,
    trustedIssuers: config.trustedIssuersFile ? z.array(TrustedIssuerSchema).parse(JSON.parse(readFileSync(config.trustedIssuersFile, 'utf8'))) : [],
    accessTokenSeconds: config.accessTokenSeconds,
    tokenRequestsPerMinute: config.tokenRequestsPerMinute,
    isCompartmentType: (type) => type === 'Patient' || indexer.compartmentParams(type).length > 0,
    isRestrictionQuery: (type, query) => isRestrictionQuery(env.registry, type, query),
    onGrantRevoked: (grantId) => outbound.endGrant(grantId),
  }, env.audit);
  const definitions = ourOperationDefinitions(readConformanceResources());
  return {
    policy: auth.policy,
    authenticate: auth.authenticate,
    security: auth.security,
    routers: [auth.router, reportRouter(env.store, auth.policy, auth.authenticate, env.fhirBase), metricsRouter(env.store, () => outbound.metrics(), auth.authenticate, env.fhirBase), ...appRouter()],
    allowedOrigin: auth.allowedOrigin,
    operations: [
      submitOperation(definitions, decideWithPlanRules, delivery),
      eligibilityCheckOperation(definitions, decideWithPlanRules),
      ...reviewOperations(definitions, delivery),
      ...grievanceOperations(definitions, delivery),
      committeeReportOperation(definitions.find((d) => d.id === 'second-opinion-report')!),
      ...outbound.operations,
    ],
    createInterceptors: { ServiceRequest: submitOnCreate(decideWithPlanRules, delivery) },
    accessRules: {
      ...outbound.accessRules,
      Task: grievanceAccessRule(env.registry),
      Communication: grievanceRecordAccessRule(env.registry, 'Communication'),
      DocumentReference: grievanceRecordAccessRule(env.registry, 'DocumentReference'),
      Provenance: grievanceRecordAccessRule(env.registry, 'Provenance'),
    },
    visiblePatients: patientsVisibleTo,
    workers: config.outboxEnabled ? outbound.workers : [],
    seed: async (store) => {
      await publishConformance(store, criteriaLibraries(env.publicUrl));
      const grievancesNamed = await namePerformersOfEarlierGrievances(store);
      if (grievancesNamed) env.logger.info('grievance_performers_named', { grievances: grievancesNamed });
      if (!config.demoMode) return;
      const written = await seedDemoData(store);
      env.logger.info('demo_data', { written });
    },
  };
}

/** Notices, reports and information requests reach providers' FHIR endpoints through the one outbox. */
function providerDelivery(outbound: Outbound, fhirBase: string): ProviderDelivery {
  return {
    async deliver(tx, recipient, resource) {
      if (!recipient.reference) return;
      for (const endpoint of await outbound.endpointsFor(tx, recipient.reference)) {
        const copy = await deliverableCopy(tx, resource, fhirBase);
        await outbound.enqueueDelivery(tx, { endpoint: endpoint.address, resource: copy, identifier: deliveredIdentifier(resource) });
      }
    },
    async requestInformation(tx, r) {
      const [endpoint] = r.recipient.reference ? await outbound.endpointsFor(tx, r.recipient.reference) : [];
      if (!endpoint || !r.patientIdentifier) return undefined;
      const task = await outbound.enqueueInformationRequest(tx, {
        endpoint: endpoint.address,
        basedOn: `ServiceRequest/${r.serviceRequestId}`,
        patient: { local: `Patient/${r.patientId}`, remote: { identifier: r.patientIdentifier } },
        request: { code: { text: r.what.join('; ') } },
        description: 'Information needed to decide a second-opinion request',
        dueDate: r.due,
      });
      return { reference: `Task/${task.id}` };
    },
  };
}
