import type { CapabilityStatement, CapabilityStatementRestResource, Resource } from 'fhir/r4.js';
import type { FhirStore } from '../storage/FhirStore.js';
import { publishConformance, sameContent } from './conformance.js';
import type { FhirContext } from './context.js';
import { readResource } from './interactions/crud.js';
import type { VersionReader } from './guard.js';
import { badRequest, FhirError } from './outcomes.js';
import { SERVER_STATEMENT_ID } from './profiles/terminology.js';
import type { FhirRequest, FhirResponse } from './request.js';
import { isAppendOnlyType, isReadOnlyType, RESOURCE_TYPES } from './resourceTypes.js';
import { BACKPORT, CANONICAL_BASE, SUBSCRIPTION_TOPICS } from './systems.js';
import { nonEmpty } from './jsonRules.js';

export interface SecurityUrls {
  authorize: string;
  token: string;
  revoke?: string;
  introspect?: string;
  register?: string;
  manage?: string;
}

const WRITE_INTERACTIONS = ['create', 'update', 'patch', 'delete'] as const;
const READ_INTERACTIONS = ['read', 'vread', 'search-type', 'history-instance', 'history-type'] as const;

/**
 * What `GET /metadata` answers in each `mode` (R4 http.html#capabilities): the statement of that type the server
 * publishes. `normative` asks for "only the normative portions of the Capability Statement": R4's CapabilityStatement
 * is normative as a whole, and a server "MAY ignore the mode parameter and return a CapabilityStatement", so it is
 * the full statement, all of which the server does.
 */
const MODES: Record<string, 'CapabilityStatement' | 'TerminologyCapabilities'> = { full: 'CapabilityStatement', normative: 'CapabilityStatement', terminology: 'TerminologyCapabilities' };

/**
 * The capabilities interaction, public (over HTTP it is answered before authentication): a read of the published
 * statement as anyone may make it, so `_summary`, `_elements` and If-None-Match work as on a read, and what it answers
 * is what `GET CapabilityStatement/server` answers, ETag included. An unknown mode is a 400.
 */
export async function capabilities(req: FhirRequest, ctx: FhirContext): Promise<FhirResponse> {
  const [mode = 'full', ...more] = req.query.filter(([name]) => name === 'mode').map(([, value]) => value);
  if (more.length) throw badRequest('The capabilities interaction takes one mode', 'mode');
  const type = Object.hasOwn(MODES, mode) ? MODES[mode] : undefined;
  if (!type) throw badRequest(`Unknown mode '${mode.slice(0, 64)}': the capabilities interaction takes mode full, normative or terminology`, 'mode');
  return readServerStatement({ ...req, auth: undefined, query: req.query.filter(([name]) => name !== 'mode') }, ctx, type);
}

type ServerStatementType = (typeof MODES)[keyof typeof MODES];
export const isServerStatement = (type: string, id: string): type is ServerStatementType => id === SERVER_STATEMENT_ID && Object.values(MODES).includes(type as ServerStatementType);

/** Each store's server statements as last read from it. */
const lastRead = new WeakMap<FhirStore, Map<string, Resource>>();

/**
 * A read of CapabilityStatement/server or TerminologyCapabilities/server. It reads the store, as any read does, so a
 * changed statement is served at once; while the store is unavailable (503) it answers with the statement as last
 * read (and at start, rememberServerStatements), so that a conformance client still learns what the server does
 * (docs/reliability.md). Access and shaping are those of a read either way.
 */
export async function readServerStatement(req: FhirRequest, ctx: FhirContext, type: ServerStatementType): Promise<FhirResponse> {
  const copies = copiesOf(ctx.store);
  const remembering: VersionReader = {
    read: async (t, id) => {
      const resource = await ctx.store.read(t, id);
      copies.set(t, resource);
      return resource;
    },
    vread: (t, id, vid) => ctx.store.vread(t, id, vid),
    history: (query) => ctx.store.history(query),
    search: (query) => ctx.store.search(query),
  };
  try {
    return await readResource(req, ctx, type, SERVER_STATEMENT_ID, remembering);
  } catch (err) {
    const copy = copies.get(type);
    if (!(err instanceof FhirError && err.status === 503) || !copy) throw err;
    return readResource(req, ctx, type, SERVER_STATEMENT_ID, { ...remembering, read: async () => copy });
  }
}

/** Reads the server's statements once, so that they are served through an outage that begins before anyone asked. */
export async function rememberServerStatements(store: FhirStore): Promise<void> {
  const copies = copiesOf(store);
  for (const type of new Set(Object.values(MODES))) {
    const stored = await store.find(type, SERVER_STATEMENT_ID);
    if (stored) copies.set(type, stored);
  }
}

function copiesOf(store: FhirStore): Map<string, Resource> {
  const copies = lastRead.get(store) ?? new Map<string, Resource>();
  lastRead.set(store, copies);
  return copies;
}

/**
 * Publishes the CapabilityStatement as CapabilityStatement/server, read-only like the conformance resources of
 * profiles/ (R4: a server's statement is a resource it may serve). Its date is when its content last changed.
 */
export async function publishCapabilityStatement(store: FhirStore, statement: CapabilityStatement): Promise<void> {
  const stored = (await store.find('CapabilityStatement', SERVER_STATEMENT_ID)) as CapabilityStatement | undefined;
  const unchanged = stored !== undefined && sameContent(withDate(stored, statement.date), statement);
  await publishConformance(store, [unchanged ? withDate(statement, stored.date) : statement]);
}

const withDate = (statement: CapabilityStatement, date: string): CapabilityStatement => ({ ...statement, date });

/**
 * The CapabilityStatement, generated from the route table's interactions, the search parameter
 * registry and the operation registry, so it always says what the server really does.
 */
export function capabilityStatement(ctx: FhirContext, baseUrl: string, security: SecurityUrls | undefined, version: string): CapabilityStatement {
  return {
    resourceType: 'CapabilityStatement',
    id: SERVER_STATEMENT_ID,
    url: `${CANONICAL_BASE}/CapabilityStatement/${SERVER_STATEMENT_ID}`,
    name: 'SecondOpinionFhirServer',
    title: 'Second-opinion FHIR server for Medi-Cal managed care plans',
    status: 'active',
    date: new Date().toISOString().slice(0, 10),
    publisher: 'second-opinion-fhir',
    kind: 'instance',
    instantiates: [BACKPORT.serverCapabilities],
    software: { name: 'second-opinion-fhir', version },
    implementation: { description: 'Second medical opinion requests, UM review and notices', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json'],
    implementationGuide: [BACKPORT.implementationGuide],
    rest: [
      {
        mode: 'server',
        security: security ? securityComponent(security) : undefined,
        resource: RESOURCE_TYPES.map((type) => resourceComponent(ctx, type)),
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'history-system' }],
        operation: ctx.operations
          .filter((o) => o.levels.includes('system'))
          .map((o) => ({ name: o.name, definition: o.definition })),
      },
    ],
  };
}

function resourceComponent(ctx: FhirContext, type: string): CapabilityStatementRestResource {
  const readOnly = isReadOnlyType(type);
  const appendOnly = isAppendOnlyType(type);
  const writes = readOnly ? [] : appendOnly ? WRITE_INTERACTIONS.filter((code) => code === 'create') : WRITE_INTERACTIONS;
  const interactions = [...READ_INTERACTIONS, ...writes];
  return {
    // Subscriptions Backport: the topics clients may subscribe to.
    extension:
      type === 'Subscription'
        ? [{ url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical', valueCanonical: SUBSCRIPTION_TOPICS.secondOpinionCase }]
        : undefined,
    type: type as CapabilityStatementRestResource['type'],
    profile: `http://hl7.org/fhir/StructureDefinition/${type}`,
    supportedProfile: supportedProfiles(ctx, type),
    interaction: interactions.map((code) => ({ code })),
    // versioned-update says updates honour If-Match; types nobody updates are only versioned.
    versioning: readOnly || appendOnly ? 'versioned' : 'versioned-update',
    readHistory: true,
    updateCreate: !readOnly && !appendOnly,
    conditionalCreate: !readOnly,
    // A read answers 304 to If-None-Match and to If-Modified-Since (crud.ts notModified).
    conditionalRead: 'full-support',
    conditionalUpdate: !readOnly && !appendOnly,
    conditionalDelete: readOnly || appendOnly ? 'not-supported' : 'single',
    referencePolicy: ['literal', 'logical'],
    searchInclude: nonEmpty(includesOf(ctx, type)),
    searchRevInclude: nonEmpty(revIncludesOf(ctx, type)),
    searchParam: [
      { name: '_id', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-id' },
      { name: '_lastUpdated', type: 'date', definition: 'http://hl7.org/fhir/SearchParameter/Resource-lastUpdated' },
      { name: '_profile', type: 'uri', definition: 'http://hl7.org/fhir/SearchParameter/Resource-profile' },
      { name: '_tag', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-tag' },
      { name: '_security', type: 'token', definition: 'http://hl7.org/fhir/SearchParameter/Resource-security' },
      ...ctx.registry.forType(type).map((d) => ({ name: d.code, type: d.type, definition: d.url, documentation: d.description || undefined })),
    ],
    operation: nonEmpty(ctx.operations.filter((o) => o.resourceTypes.includes(type) && !o.levels.includes('system')).map((o) => ({ name: o.name, definition: o.definition }))),
  };
}

/**
 * Our profiles of the type, and for Subscription the backport IG's: Subscriptions Backport IG 1.1 (conformance.md,
 * "Conformance in FHIR R4") says a server SHALL list it, and SHOULD instantiate the IG's server statement (below).
 */
function supportedProfiles(ctx: FhirContext, type: string): string[] | undefined {
  const own = ctx.supportedProfiles?.get(type) ?? [];
  return nonEmpty(type === 'Subscription' ? [...own, BACKPORT.subscriptionProfile] : own);
}

/**
 * `_include` values for a search of `type`: each of its reference parameters, and `*` for all of them
 * (search/parse.ts parseInclude accepts exactly the registry's reference parameters, and `*`).
 */
function includesOf(ctx: FhirContext, type: string): string[] {
  const codes = ctx.registry.forType(type).filter((d) => d.type === 'reference').map((d) => `${type}:${d.code}`);
  return codes.length ? [...codes, `${type}:*`] : [];
}

/**
 * `_revinclude` values for a search of `type`: the reference parameters of every served type that may
 * point at it (its targets name it, or name none), and `*` for all of a type's. The same registry parseInclude checks them against.
 */
function revIncludesOf(ctx: FhirContext, type: string): string[] {
  return RESOURCE_TYPES.flatMap((source) => {
    const codes = ctx.registry
      .forType(source)
      .filter((d) => d.type === 'reference' && (d.targets.length === 0 || d.targets.includes(type)))
      .map((d) => `${source}:${d.code}`);
    return codes.length ? [...codes, `${source}:*`] : [];
  });
}

function securityComponent(urls: SecurityUrls): NonNullable<CapabilityStatement['rest']>[number]['security'] {
  const ext = (url: string, value?: string) => (value ? [{ url, valueUri: value }] : []);
  return {
    cors: true,
    service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }], text: 'OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)' }],
    extension: [
      {
        url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
        extension: [
          ...ext('authorize', urls.authorize),
          ...ext('token', urls.token),
          ...ext('revoke', urls.revoke),
          ...ext('introspect', urls.introspect),
          ...ext('register', urls.register),
          ...ext('manage', urls.manage),
        ],
      },
    ],
  };
}
