import type { Resource, Task } from 'fhir/r4.js';
import { parseLiteral } from '../fhir/references.js';
import { parseSearch } from '../fhir/search/parse.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import { CODE_SYSTEMS } from '../fhir/systems.js';
import type { Logger } from '../log.js';
import type { FhirStore, OutboxMessage } from '../storage/FhirStore.js';
import { CDEX_POLL, CdexPollPayload, failInformationRequest } from './cdex.js';
import { FHIR_CREATE, FhirCreatePayload } from './deliveries.js';
import { isMemberOwned } from './subscriptionAccess.js';
import { REST_HOOK, RestHookPayload, setSubscriptionStatusInTx } from './subscriptions.js';
import { OUTBOUND_TAG } from './topic.js';
import type { DeadLetterHandler } from './worker.js';

/**
 * Makes a delivery that was given up visible to UM staff: a Task "delivery-failed" (business
 * status delivery-failed) whose focus is what could not be delivered, owned by the plan
 * organization, written in the same transaction that marks the outbox row failed, saying what staff
 * can do. For a subscription, the Subscription goes to status error and one open Task per
 * Subscription is kept (none for a member's).
 */
export interface DeadLetterDeps {
  planOrganization?: string;
  registry: SearchParamRegistry;
  fhirBase: string;
  logger: Logger;
}

export function deadLetterRecorder(deps: DeadLetterDeps): DeadLetterHandler {
  return async (message, error, tx) => {
    const target = await describeTarget(tx, message, error);
    if (!target) return;
    if (target.onePerFocus && target.focus && (await openFailureTask(tx, deps, target.focus))) return;
    const task = await failureTask(tx, message, error, { ...target, owner: target.owner ?? deps.planOrganization });
    const stored = await tx.create(task);
    deps.logger.info('delivery_failed_task', { task: stored.id, kind: message.kind, outbox: message.id });
  };
}

interface Target {
  focus?: string;
  owner?: string;
  endpoint?: string;
  what: string;
  /** What UM staff can do about it: there is no resend, and the same delivery is never queued twice (its dedupe key). */
  action: string;
  onePerFocus?: boolean;
}

const CHECK_LOG = 'Look up the outbox message named in input in the server log.';

async function describeTarget(tx: FhirStore, message: OutboxMessage, error: string): Promise<Target | undefined> {
  switch (message.kind) {
    case FHIR_CREATE:
      return providerDelivery(message);
    case CDEX_POLL: {
      const p = CdexPollPayload.safeParse(message.payload);
      if (!p.success) return { what: 'information request to a provider', action: CHECK_LOG };
      await failInformationRequest(tx, p.data.localTask, error);
      const action = 'The request Task in focus is failed: ask the provider for the information another way (phone, fax or portal) and record it on the case.';
      return { focus: p.data.localTask, endpoint: p.data.endpoint, what: 'information request to a provider', action };
    }
    case REST_HOOK:
      return subscriptionNotification(tx, message, error);
    default:
      return { what: `outbox message of kind ${message.kind.slice(0, 40)}`, action: CHECK_LOG };
  }
}

function providerDelivery(message: OutboxMessage): Target {
  const p = FhirCreatePayload.safeParse(message.payload);
  if (!p.success) return { what: 'delivery to a provider', action: CHECK_LOG };
  const type = p.data.resource.resourceType;
  const action =
    `It will not be sent again: send the ${type} in focus to the provider another way (fax, mail or portal), then complete this Task. ` +
    "So that later deliveries reach them, check the provider's Endpoint (address in input) and the plan's credentials for it.";
  return { focus: p.data.focus, owner: p.data.owner, endpoint: p.data.endpoint, what: `${type} delivery to a provider`, action };
}

/**
 * A subscription's notification that was given up: the Subscription goes to status error. A member's
 * Subscription opens no Task: its endpoint is the member's to fix, status and $status tell them, and
 * UM staff could do nothing about it (probe 6, M5: one Task per failed handshake flooded the queue).
 */
async function subscriptionNotification(tx: FhirStore, message: OutboxMessage, error: string): Promise<Target | undefined> {
  const p = RestHookPayload.safeParse(message.payload);
  if (!p.success) return { what: 'subscription notification', action: CHECK_LOG };
  await setSubscriptionStatusInTx(tx, p.data.subscription, 'error', `notification delivery failed: ${error}`);
  // A heartbeat that fails says the same as the next event would; the Subscription error is enough.
  if (p.data.type === 'heartbeat') return undefined;
  const subscription = await tx.find('Subscription', p.data.subscription);
  if (subscription && isMemberOwned(subscription)) return undefined;
  const action = "The Subscription in focus is in status error: its owner sets it back to requested once the endpoint works; plan administration may delete it.";
  return { focus: `Subscription/${p.data.subscription}`, what: `subscription ${p.data.type}`, action, onePerFocus: true };
}

async function openFailureTask(tx: FhirStore, deps: DeadLetterDeps, focus: string): Promise<boolean> {
  const { query } = parseSearch(
    'Task',
    [
      ['focus', focus],
      ['_tag', `${OUTBOUND_TAG.system}|${OUTBOUND_TAG.code}`],
      ['status', 'requested,in-progress'],
    ],
    deps.registry,
    { strict: true, baseUrl: deps.fhirBase },
  );
  const { resources } = await tx.search({ ...query, count: 1 });
  return resources.length > 0;
}

async function failureTask(tx: FhirStore, message: OutboxMessage, error: string, target: Target): Promise<Task> {
  const patient = target.focus ? await patientOf(tx, target.focus) : undefined;
  const task: Task = {
    resourceType: 'Task',
    meta: { tag: [{ ...OUTBOUND_TAG }] },
    status: 'requested',
    intent: 'order',
    priority: 'asap',
    code: { text: 'delivery-failed' },
    businessStatus: { coding: [{ system: CODE_SYSTEMS.businessStatus, code: 'delivery-failed', display: 'Delivery failed' }], text: 'Delivery failed' },
    description: `The ${target.what} could not be completed after ${message.attempts} attempt(s). ${target.action}`,
    statusReason: { text: error.slice(0, 500) },
    authoredOn: new Date().toISOString(),
    input: [{ type: { text: 'outbox-message' }, valueString: message.id }],
  };
  if (target.focus) task.focus = { reference: target.focus };
  if (patient) task.for = { reference: patient };
  if (target.owner) task.owner = { reference: target.owner };
  if (target.endpoint) task.input!.push({ type: { text: 'endpoint' }, valueUrl: target.endpoint });
  return task;
}

/** The member the undelivered resource is about, so the Task shows up in their record. */
async function patientOf(tx: FhirStore, focus: string): Promise<string | undefined> {
  const literal = parseLiteral(focus);
  if (!literal) return undefined;
  const resource = (await tx.find(literal[0], literal[1])) as (Resource & Record<string, { reference?: string } | undefined>) | undefined;
  if (!resource) return undefined;
  if (resource.resourceType === 'Patient') return focus;
  for (const field of ['subject', 'for', 'patient', 'beneficiary']) {
    const ref = resource[field]?.reference;
    if (typeof ref === 'string' && ref.startsWith('Patient/')) return ref;
  }
  return undefined;
}
