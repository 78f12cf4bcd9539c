import { createHash, randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import type { Patient } from 'fhir/r4.js';
import { z } from 'zod';
import type { UserRole } from '../fhir/request.js';
import type { FhirStore } from '../storage/FhirStore.js';
import type { Grant } from './accessTokens.js';
import type { Client, ClientRegistry } from './clientRegistry.js';
import { accessDenied, invalidRequest, invalidScope, OAuthError } from './oauthErrors.js';
import { esc, hidden, page, select } from './pages.js';
import { type ResourceScope, ScopeSet } from './smartScopes.js';
import { identify } from './userDirectory.js';

export interface AuthorizeDeps {
  store: FhirStore;
  clients: ClientRegistry;
  fhirBase: string;
  demoMode: boolean;
  /** Which query-restricted v2 scopes may be granted (ScopeSet.narrow). */
  restrictable: (scope: ResourceScope) => boolean;
}

/** The authorization request parameters we keep through login and consent. */
interface AuthorizeParams {
  response_type: string;
  client_id: string;
  redirect_uri: string;
  scope: string;
  state: string;
  aud: string;
  code_challenge: string;
  code_challenge_method: string;
  launch?: string;
  nonce?: string;
}

/** What an EHR launch bound to its `launch` id: the app it launched, the EHR user, the context. */
const LaunchContextSchema = z.object({ clientId: z.string(), fhirUser: z.string(), patient: z.string().optional(), encounter: z.string().optional() });
export type LaunchContext = z.infer<typeof LaunchContextSchema>;

/**
 * Who the end-user is: the user of an EHR launch, or, in demo mode only, the user (and patient) picked
 * on the demo login form. Outside demo mode `user` and `patient` parameters are ignored: the caller
 * chooses them, so they authenticate no one (RFC 6749 §3.1; SMART: the EHR authenticates the user).
 */
interface EndUser {
  fhirUser?: string;
  /** The patient in the launch context. */
  contextPatient?: string;
  /** The patient picked on the demo form (practitioners). */
  pickedPatient?: string;
}

export interface CodeGrant extends Grant {
  redirectUri: string;
  codeChallenge: string;
  nonce?: string;
}

const CODE_SECONDS = 120;

function readParams(source: Record<string, unknown>): AuthorizeParams {
  const get = (k: string) => (typeof source[k] === 'string' ? (source[k] as string) : undefined);
  return {
    response_type: get('response_type') ?? '',
    client_id: get('client_id') ?? '',
    redirect_uri: get('redirect_uri') ?? '',
    scope: get('scope') ?? '',
    state: get('state') ?? '',
    aud: get('aud') ?? '',
    code_challenge: get('code_challenge') ?? '',
    code_challenge_method: get('code_challenge_method') ?? '',
    launch: get('launch'),
    nonce: get('nonce'),
  };
}

/**
 * Checks the client and redirect URI first (errors before that point are never redirected, RFC
 * 6749 4.1.2.1), then everything else, with errors redirected to the client.
 */
async function validate(deps: AuthorizeDeps, p: AuthorizeParams): Promise<{ client: Client; scopes: ScopeSet; launch?: LaunchContext }> {
  const client = await deps.clients.get(p.client_id);
  if (!client) throw invalidRequest('Unknown client_id');
  if (!p.redirect_uri || !client.redirect_uris.includes(p.redirect_uri)) throw invalidRequest('redirect_uri does not match a registered redirect URI');
  const fail = (e: OAuthError) => e.withRedirect(p.redirect_uri, p.state);
  if (p.response_type !== 'code') throw fail(new OAuthError('unsupported_response_type', 'response_type must be code'));
  if (!p.state) throw fail(invalidRequest('state is required'));
  if (p.aud.replace(/\/$/, '') !== deps.fhirBase) throw fail(invalidRequest(`aud must be this server's FHIR base (${deps.fhirBase})`));
  if (p.code_challenge_method !== 'S256' || !/^[A-Za-z0-9_-]{43,128}$/.test(p.code_challenge)) throw fail(invalidRequest('PKCE with code_challenge_method S256 is required'));
  const allowed = ScopeSet.parse(client.scope);
  const scopes = allowed.narrow(ScopeSet.parse(p.scope), deps.restrictable);
  if (!scopes.scopes.length) throw fail(invalidScope('None of the requested scopes is allowed for this client'));
  let launch: LaunchContext | undefined;
  if (p.launch) {
    // SMART App Launch: an EHR launch's context is granted through the `launch` scope. Refused rather than
    // ignored: ignored, the app would fall into a standalone login instead of being told what it missed;
    // refused before it is taken, the launch id stays usable for the corrected request.
    if (!scopes.has('launch')) throw fail(invalidScope('A launch parameter needs the launch scope'));
    launch = await takeLaunch(deps, p.launch, client.client_id);
    if (!launch) throw fail(invalidRequest('Unknown or expired launch'));
  }
  return { client, scopes, launch };
}

/**
 * SMART App Launch: `launch` is an opaque context handle, not a credential. It is taken on first use
 * (a launch URL seen later in history, logs or a Referer is worth nothing) and honoured only for the
 * client the EHR launched; for another client it is consumed all the same.
 */
async function takeLaunch(deps: AuthorizeDeps, launchId: string, clientId: string): Promise<LaunchContext | undefined> {
  const parsed = LaunchContextSchema.safeParse(await deps.store.takeEphemeral(`launch:${launchId}`));
  return parsed.success && parsed.data.clientId === clientId ? parsed.data : undefined;
}

function endUser(deps: AuthorizeDeps, source: Record<string, unknown>, launch: LaunchContext | undefined): EndUser {
  if (launch) return { fhirUser: launch.fhirUser, contextPatient: launch.patient };
  if (!deps.demoMode) return {};
  const picked = (k: string) => (typeof source[k] === 'string' && source[k] ? (source[k] as string) : undefined);
  return { fhirUser: picked('user'), pickedPatient: picked('patient') };
}

/** GET/POST /auth/authorize: EHR launches complete at once; standalone launches show login (demo) and patient picker. */
export function authorizeHandler(deps: AuthorizeDeps) {
  return async (req: Request, res: Response): Promise<void> => {
    const source = { ...(req.query as Record<string, unknown>), ...((req.body ?? {}) as Record<string, unknown>) };
    const p = readParams(source);
    try {
      const { scopes, launch } = await validate(deps, p);
      const who = endUser(deps, source, launch);
      if (!who.fhirUser) return await loginPage(deps, res, p, scopes);
      const fhirUser = who.fhirUser;
      const identity = await identify(deps.store, fhirUser);
      if (!identity) throw accessDenied('Unknown user').withRedirect(p.redirect_uri, p.state);
      const patient = who.contextPatient ?? identity.patient ?? who.pickedPatient;
      // SMART: a granted patient/ scope needs a patient in context; without launch/patient it is inferred (the picker).
      const needsPatient = scopes.has('launch/patient') || scopes.resourceScopes.some((s) => s.context === 'patient');
      if (needsPatient && !patient) return await loginPage(deps, res, p, scopes, fhirUser);
      if (patient && !(await deps.store.find('Patient', patient.replace(/^Patient\//, '')))) throw accessDenied('Unknown patient').withRedirect(p.redirect_uri, p.state);
      if (identity.patient && patient !== identity.patient) throw accessDenied('A member may only act for their own record').withRedirect(p.redirect_uri, p.state);
      await redirectWithCode(deps, res, p, {
        clientId: p.client_id,
        scope: scopes.toString(),
        fhirUser,
        patient: patient?.replace(/^Patient\//, ''),
        encounter: launch?.encounter,
        roles: identity.roles as UserRole[],
        redirectUri: p.redirect_uri,
        codeChallenge: p.code_challenge,
        nonce: p.nonce,
      });
    } catch (err) {
      if (err instanceof OAuthError) return err.render(res);
      throw err;
    }
  };
}

/** RFC 6749 §4.1.2: a single-use code, kept (hashed) for two minutes, sent to the registered redirect URI. */
async function redirectWithCode(deps: AuthorizeDeps, res: Response, p: AuthorizeParams, grant: CodeGrant): Promise<void> {
  const code = randomBytes(32).toString('base64url');
  await deps.store.putEphemeral(`code:${hash(code)}`, grant, new Date(Date.now() + CODE_SECONDS * 1000));
  const url = new URL(p.redirect_uri);
  url.searchParams.set('code', code);
  url.searchParams.set('state', p.state);
  res.setHeader('Cache-Control', 'no-store');
  res.redirect(302, url.toString());
}

export const hash = (value: string): string => createHash('sha256').update(value).digest('base64url');

/** Standalone launch: pick the user (demo identity provider) and, for `launch/patient`, the patient. */
async function loginPage(deps: AuthorizeDeps, res: Response, p: AuthorizeParams, scopes: ScopeSet, fhirUser?: string): Promise<void> {
  if (!deps.demoMode) {
    throw accessDenied('No interactive login is configured on this server; launch from a trusted EHR or use token exchange').withRedirect(p.redirect_uri, p.state);
  }
  const users = await demoUsers(deps.store);
  const patients = scopes.has('launch/patient') ? await listPatients(deps.store) : [];
  const params = hidden({ ...p, launch: p.launch });
  const body = `<h1>Sign in to the second-opinion service</h1>
<p class="note">Demo identity provider: choose who you are. A real deployment connects its identity provider here.</p>
<form method="post" action="/auth/authorize">${params}
${fhirUser ? hidden({ user: fhirUser }) : select('user', 'User', users)}
${patients.length ? select('patient', 'Patient (for practitioners; members always see their own record)', [{ value: '', label: '(my own record, for members)' }, ...patients], false) : ''}
<p>The app <strong>${esc(p.client_id)}</strong> asks for: <code>${esc(scopes.toString())}</code></p>
<button type="submit">Sign in and allow</button></form>`;
  res.setHeader('Cache-Control', 'no-store');
  res.type('html').send(page('Sign in', body));
}

export async function demoUsers(store: FhirStore): Promise<{ value: string; label: string }[]> {
  const search = (resourceType: string) => store.search({ resourceType, clauses: [], sort: [{ param: '_id', kind: 'id', descending: false }], count: 200, offset: 0, total: false });
  const roles = await search('PractitionerRole');
  const users: { value: string; label: string }[] = [];
  const seen = new Set<string>();
  for (const role of roles.resources as { practitioner?: { reference?: string; display?: string }; code?: { coding?: { code?: string }[] }[] }[]) {
    const ref = role.practitioner?.reference;
    if (!ref || seen.has(ref)) continue;
    seen.add(ref);
    const codes = (role.code ?? []).flatMap((c) => c.coding ?? []).map((c) => c.code).filter((c) => c && c !== 'treating-provider' && c !== 'second-opinion-provider');
    users.push({ value: ref, label: `${role.practitioner?.display ?? ref}${codes.length ? ` — ${codes.join(', ')}` : ' — treating provider'}` });
  }
  for (const p of await listPatients(store)) users.push({ value: p.value, label: `${p.label} — member` });
  return users;
}

export async function listPatients(store: FhirStore): Promise<{ value: string; label: string }[]> {
  const { resources } = await store.search({ resourceType: 'Patient', clauses: [], sort: [{ param: '_id', kind: 'id', descending: false }], count: 200, offset: 0, total: false });
  return (resources as Patient[]).map((p) => ({ value: `Patient/${p.id}`, label: `${p.name?.[0]?.given?.join(' ') ?? ''} ${p.name?.[0]?.family ?? ''} (${p.birthDate ?? '?'})`.trim() }));
}
