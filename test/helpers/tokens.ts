import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';
import { type Grant, issueAccessToken } from '../../server/src/auth/accessTokens.js';
import { loadSigningKey } from '../../server/src/auth/signingKeys.js';
import type { DemoServer } from './demoServer.js';

/** An access token signed with the running server's key, as its token endpoint would issue it. */
export function tokenFor(server: DemoServer, grant: Partial<Grant> & { scope: string }, seconds = 300): string {
  const key = loadSigningKey(server.dataDir);
  return issueAccessToken({ issuer: server.url, fhirBase: server.fhirBase, key, accessTokenSeconds: seconds }, { clientId: 'second-opinion-app', roles: [], ...grant }).token;
}

/** A token with chosen claims and signing (for the negative suite). */
export function forgedToken(server: DemoServer, claims: Record<string, unknown>, options: { key?: 'server' | 'other' | 'none'; alg?: jwt.Algorithm } = {}): string {
  const base = { client_id: 'second-opinion-app', scope: 'user/*.rs', roles: ['plan-admin'], token_use: 'access', sub: 'x', jti: randomUUID(), iss: server.url, aud: server.fhirBase, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 300, ...claims };
  if (options.key === 'none') return `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(base)).toString('base64url')}.`;
  const pem = options.key === 'other' ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) : loadSigningKey(server.dataDir).privateKeyPem;
  return jwt.sign(base, pem, { algorithm: options.alg ?? 'RS256' });
}

export function backendAssertion(server: DemoServer, claims: Record<string, unknown> = {}, alg: jwt.Algorithm = 'RS384'): string {
  const k = JSON.parse(readFileSync(join(server.dataDir, 'keys', 'demo-backend-client.json'), 'utf8')) as { privateKeyPem: string; kid: string };
  const now = Math.floor(Date.now() / 1000);
  return jwt.sign({ iss: 'demo-backend', sub: 'demo-backend', aud: `${server.url}/auth/token`, exp: now + 240, jti: randomUUID(), ...claims }, k.privateKeyPem, { algorithm: alg, keyid: k.kid });
}

export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** The SMART app's authorization-code flow with a demo login as `user` (PKCE): the token response, with its grant's tokens. */
export async function smartAppGrant(server: DemoServer, user: string, scope: string): Promise<{ access_token: string; refresh_token?: string; scope: string }> {
  const { verifier, challenge } = pkce();
  const redirect = `${server.url}/app/index.html`;
  const form = (path: string, body: Record<string, string>) =>
    fetch(`${server.url}${path}`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body).toString() });
  const params = { response_type: 'code', client_id: 'second-opinion-app', redirect_uri: redirect, scope, state: 's', aud: server.fhirBase, code_challenge: challenge, code_challenge_method: 'S256', user };
  const authorized = await form('/auth/authorize', params);
  const code = new URL(authorized.headers.get('location') ?? '', server.url).searchParams.get('code');
  if (authorized.status !== 302 || !code) throw new Error(`authorize answered ${authorized.status} ${authorized.headers.get('location') ?? ''}`);
  const res = await form('/auth/token', { grant_type: 'authorization_code', code, redirect_uri: redirect, client_id: 'second-opinion-app', code_verifier: verifier });
  if (res.status !== 200) throw new Error(`token answered ${res.status} ${await res.text()}`);
  return (await res.json()) as { access_token: string; refresh_token?: string; scope: string };
}
