import type { Basic, Resource } from 'fhir/r4.js';
import type { Interaction, ResourceAccessRule } from '../fhir/context.js';
import { forbidden } from '../fhir/outcomes.js';
import type { AccessContext } from '../fhir/request.js';
import { TOPIC_BASIC_ID } from './topic.js';

/**
 * Who may change the published subscription topic (the `Basic` topic.ts publishes) and any Basic
 * that claims to be a SubscriptionTopic: plan administration alone. Clients discover the topic and
 * trust what it says (its triggers and filters); a write by anyone else would break discovery or
 * spoof it (probe 6, M1), and it stays until the project ships a newer topic version (topic.ts
 * publishTopic). Reads, and every other Basic, follow the scopes and compartments alone.
 */

const WRITES: ReadonlySet<Interaction> = new Set(['create', 'update', 'patch', 'delete']);

/** The topic Basic by its id, or a Basic coded as a SubscriptionTopic (the IG's R4 form of a topic). */
export const isTopicBasic = (resource: Resource): boolean =>
  resource.resourceType === 'Basic' && (resource.id === TOPIC_BASIC_ID || ((resource as Basic).code?.coding ?? []).some((c) => c.code === 'SubscriptionTopic'));

const isPlanAdmin = (auth: AccessContext) => auth.roles.includes('plan-admin');

export const topicAccessRule: ResourceAccessRule = {
  prepareWrite(req, _ctx, resource) {
    if (isTopicBasic(resource) && !isPlanAdmin(req.auth)) throw forbidden('Subscription topics are published by the server: only plan administration may change them');
    return resource;
  },
  mayAccess(req, _ctx, resource) {
    // Also the stored topic a PUT, PATCH or DELETE would change, which prepareWrite never sees.
    return !WRITES.has(req.interaction ?? 'read') || !isTopicBasic(resource) || isPlanAdmin(req.auth);
  },
  searchClauses: () => [],
};
