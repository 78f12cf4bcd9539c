import type { Coding, Resource, Subscription } from 'fhir/r4.js';
import type { AccessPolicy, ResourceAccessRule } from '../fhir/context.js';
import { forbidden } from '../fhir/outcomes.js';
import type { AccessContext } from '../fhir/request.js';
import { relativeToBase } from '../fhir/references.js';
import { parseSearch } from '../fhir/search/parse.js';
import type { SearchParamRegistry } from '../fhir/search/registry.js';
import { CANONICAL_BASE } from '../fhir/systems.js';
import { namesOurTopic, parseFilters, TOPIC_RESOURCE_TYPES } from './topic.js';

/**
 * Who may see and change a Subscription (finding F5). A Subscription is its creator's: it names an
 * endpoint that receives case data, and its channel.header usually carries the endpoint's secret.
 *   - create / update / patch: the owner only, and only with filters the owner's token could search
 *     (checkSubscriptionAccess); an update by anyone else would re-judge the filters against the
 *     wrong token, so staff switch a Subscription off by deleting it;
 *   - delete: the owner and plan-admin;
 *   - read, vread, search, history, $status, $events: the owner, plan-admin and auditor (others get 404, as
 *     for any resource by id outside a token's reach, and searches leave them out);
 *   - channel.header values: shown to the owner alone; staff see the header names.
 * Without auth (the FHIR layer's own tests) none of this applies, as for every access check.
 */

/** meta.tag naming the client (and user) that created a Subscription. */
export const SUBSCRIPTION_OWNER_SYSTEM = `${CANONICAL_BASE}/CodeSystem/subscription-owner`;
/** meta.tag naming the authorization grant of the token that last wrote it: revoking that grant ends the Subscription's notifications. */
export const SUBSCRIPTION_GRANT_SYSTEM = `${CANONICAL_BASE}/CodeSystem/subscription-grant`;

export const subscriptionGrant = (sub: Resource): string | undefined => sub.meta?.tag?.find((t) => t.system === SUBSCRIPTION_GRANT_SYSTEM)?.code;

export const subscriptionOwner = (sub: Resource): string | undefined => sub.meta?.tag?.find((t) => t.system === SUBSCRIPTION_OWNER_SYSTEM)?.code;

/**
 * The owner code of a caller: the client of a backend service; the client and the user of an app
 * launch, as the users of a public app share its client id. Percent-encoded, so no two callers share
 * a code and the code is a plain token in a `_tag` search.
 */
export function ownerCode(auth: AccessContext): string {
  const user = auth.kind === 'system' ? undefined : (auth.fhirUser ?? auth.patient);
  const client = encodeURIComponent(auth.clientId);
  return user ? `${client}/${encodeURIComponent(user)}` : client;
}

/** The client and user an owner code names (`ownerCode`); undefined for a code it did not make. */
export function ownerOf(code: string): { clientId: string; user?: string } | undefined {
  const [client, user, ...rest] = code.split('/');
  if (!client || rest.length) return undefined;
  try {
    const named = user === undefined ? undefined : decodeURIComponent(user);
    // A token with a patient in context and no fhirUser is owned by that patient: its code holds the bare id.
    return { clientId: decodeURIComponent(client), user: named === undefined || named.includes('/') ? named : `Patient/${named}` };
  } catch {
    return undefined;
  }
}

/**
 * Whether a member (or their representative) owns the Subscription: the user of its owner code is a
 * Patient or RelatedPerson. Not a backend service, a practitioner or plan staff.
 */
export function isMemberOwned(sub: Resource): boolean {
  const code = subscriptionOwner(sub);
  const user = code ? ownerOf(code)?.user : undefined;
  return user !== undefined && /^(Patient|RelatedPerson)\//.test(user);
}

const hasRole = (auth: AccessContext, role: 'plan-admin' | 'auditor') => auth.roles.includes(role);
/** Staff who see every Subscription (the UM staff who follow failed deliveries, and audit). */
const isStaff = (auth: AccessContext) => hasRole(auth, 'plan-admin') || hasRole(auth, 'auditor');
const isOwner = (auth: AccessContext, sub: Resource) => subscriptionOwner(sub) === ownerCode(auth);

export interface SubscriptionAccessOptions {
  registry: SearchParamRegistry;
  baseUrl: string;
  maxFilters?: number;
}

/** Parameters whose value pins a filter to one patient. */
const PATIENT_PARAMS = new Set(['patient', 'subject', 'beneficiary']);

/**
 * What a client may subscribe to is what it may search: every resource type the Subscription can
 * deliver needs the caller's search scope, and a caller limited to one patient's compartment must
 * pin every filter to that patient (`patient=Patient/x`), since notifications carry that data
 * without a later access check. Returns the Subscription stamped with its owner (the caller),
 * replacing any owner tag the client sent. FhirError 403 (or 400/422 for a malformed filter).
 */
export function checkSubscriptionAccess(auth: AccessContext, subscription: Subscription, policy: AccessPolicy, options: SubscriptionAccessOptions): Subscription {
  // Any other criteria is refused by the write hook (422); it still gets its owner.
  if (namesOurTopic(subscription.criteria)) checkFilters(auth, subscription, policy, options);
  const tags: Coding[] = (subscription.meta?.tag ?? []).filter((t) => t.system !== SUBSCRIPTION_OWNER_SYSTEM && t.system !== SUBSCRIPTION_GRANT_SYSTEM);
  tags.push({ system: SUBSCRIPTION_OWNER_SYSTEM, code: ownerCode(auth) });
  if (auth.grantId) tags.push({ system: SUBSCRIPTION_GRANT_SYSTEM, code: auth.grantId });
  return { ...subscription, meta: { ...subscription.meta, tag: tags } };
}

function checkFilters(auth: AccessContext, subscription: Subscription, policy: AccessPolicy, options: SubscriptionAccessOptions): void {
  const filters = parseFilters(subscription, options.registry, options.baseUrl, options.maxFilters ?? 20);
  const types = filters.length ? [...new Set(filters.map((f) => f.resourceType))] : [...TOPIC_RESOURCE_TYPES];
  for (const type of types) policy.requireScope(auth, type, 'search');
  const compartment = types.map((t) => policy.patientCompartment(auth, t, 'search')).find(Boolean);
  if (!compartment) return;
  if (!filters.length) throw forbidden(`A token limited to ${compartment} must filter every criteria by that patient`);
  for (const filter of filters) {
    const pinned = filter.params.some(([k, v]) => PATIENT_PARAMS.has(k) && relativeToBase(options.baseUrl, v) === compartment);
    if (!pinned) throw forbidden(`Filter on ${filter.resourceType} must include patient=${compartment}`);
  }
}

/** channel.header as staff see it: `Authorization: [hidden]`. */
export function maskHeaders(sub: Subscription): Subscription {
  if (!sub.channel?.header?.length) return sub;
  const header = sub.channel.header.map((line) => `${line.split(':', 1)[0]}: [hidden]`);
  return { ...sub, channel: { ...sub.channel, header } };
}

/** The rule registered for Subscription in FhirContext.accessRules (compose.ts). */
export function subscriptionAccessRule(options: SubscriptionAccessOptions): ResourceAccessRule {
  return {
    prepareWrite(req, ctx, resource) {
      // The caller's right to write Subscriptions comes first, then what it may subscribe to.
      ctx.policy.requireScope(req.auth, 'Subscription', req.interaction ?? 'create');
      return checkSubscriptionAccess(req.auth, resource as Subscription, ctx.policy, options);
    },
    mayAccess(req, ctx, resource) {
      switch (req.interaction) {
        case 'create':
        case 'update':
          return isOwner(req.auth, resource) && withinGrant(req.auth, resource as Subscription, ctx.policy, options);
        case 'patch':
          // Also the result of a patch, which prepareWrite never sees: filters widened by a patch are refused here, and so is
          // a grant tag removed or changed, which would keep notifications going after the grant is revoked (a PUT re-stamps it).
          return isOwner(req.auth, resource) && subscriptionGrant(resource) === req.auth.grantId && withinGrant(req.auth, resource as Subscription, ctx.policy, options);
        case 'delete':
          return isOwner(req.auth, resource) || hasRole(req.auth, 'plan-admin');
        default:
          return isOwner(req.auth, resource) || isStaff(req.auth);
      }
    },
    searchClauses(req) {
      if (isStaff(req.auth)) return [];
      const owner: [string, string][] = [['_tag', `${SUBSCRIPTION_OWNER_SYSTEM}|${ownerCode(req.auth)}`]];
      return parseSearch('Subscription', owner, options.registry, { strict: true, baseUrl: options.baseUrl }).query.clauses;
    },
    present(auth, resource) {
      return isOwner(auth, resource) ? resource : maskHeaders(resource as Subscription);
    },
  };
}

function withinGrant(auth: AccessContext, sub: Subscription, policy: AccessPolicy, options: SubscriptionAccessOptions): boolean {
  if (!namesOurTopic(sub.criteria)) return true;
  try {
    checkFilters(auth, sub, policy, options);
    return true;
  } catch {
    return false;
  }
}
