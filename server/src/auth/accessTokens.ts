import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { z } from 'zod';
import { unauthorized } from '../fhir/outcomes.js';
import { type AccessContext, USER_ROLES, type UserRole } from '../fhir/request.js';
import type { SigningKey } from './signingKeys.js';
import { ScopeSet } from './smartScopes.js';


const AccessClaims = z.object({
  iss: z.string(),
  aud: z.union([z.string(), z.array(z.string())]),
  sub: z.string(),
  exp: z.number(),
  iat: z.number(),
  jti: z.string().min(8),
  client_id: z.string(),
  scope: z.string(),
  fhirUser: z.string().optional(),
  patient: z.string().optional(),
  roles: z.array(z.enum(USER_ROLES)).default([]),
  organization: z.string().optional(),
  /** The authorization grant the token comes from (a code and its refreshes), revoked together. */
  gid: z.string().optional(),
  token_use: z.literal('access'),
});
export type AccessClaims = z.infer<typeof AccessClaims>;

export interface Grant {
  clientId: string;
  scope: string;
  fhirUser?: string;
  patient?: string;
  encounter?: string;
  roles: UserRole[];
  /** The Organization a backend client acts for (its registration), e.g. an IPA's UM system. */
  organization?: string;
  /** The authorization grant (a code and the refreshes after it): its tokens are revoked together. */
  grantId?: string;
}

export interface TokenIssuer {
  issuer: string;
  fhirBase: string;
  key: SigningKey;
  accessTokenSeconds: number;
}

export function issueAccessToken(t: TokenIssuer, grant: Grant): { token: string; jti: string; expiresIn: number } {
  const jti = randomUUID();
  const token = jwt.sign(
    { client_id: grant.clientId, scope: grant.scope, fhirUser: grant.fhirUser, patient: grant.patient, roles: grant.roles, organization: grant.organization, gid: grant.grantId, token_use: 'access' },
    t.key.privateKey,
    { algorithm: 'RS256', keyid: t.key.kid, issuer: t.issuer, audience: t.fhirBase, subject: grant.fhirUser ?? grant.clientId, expiresIn: t.accessTokenSeconds, jwtid: jti },
  );
  return { token, jti, expiresIn: t.accessTokenSeconds };
}

/** OpenID Connect id_token (RS256) with `fhirUser`. */
/** SMART App Launch 2 (scopes and launch context, fhirUser): the claim is the user resource's absolute URL. */
export const absoluteFhirUser = (fhirBase: string, fhirUser: string | undefined): string | undefined =>
  fhirUser && !/^https?:\/\//.test(fhirUser) ? `${fhirBase}/${fhirUser}` : fhirUser;

export function issueIdToken(t: TokenIssuer, grant: Grant, nonce?: string): string {
  const fhirUser = absoluteFhirUser(t.fhirBase, grant.fhirUser);
  return jwt.sign({ fhirUser, nonce, profile: fhirUser }, t.key.privateKey, {
    algorithm: 'RS256',
    keyid: t.key.kid,
    issuer: t.issuer,
    audience: grant.clientId,
    subject: grant.fhirUser ?? grant.clientId,
    expiresIn: t.accessTokenSeconds,
  });
}

/**
 * Verifies one of our access tokens: RS256 with our key only (so `alg: none`, HS256 with the
 * public key as secret, or another key all fail), our issuer, the FHIR base as audience, not
 * expired, not before its time, claims as we issue them.
 */
const CLOCK_TOLERANCE_SECONDS = 5;

export function verifyAccessToken(t: TokenIssuer, token: string): AccessClaims {
  let decoded: unknown;
  try {
    decoded = jwt.verify(token, t.key.publicKey, { algorithms: ['RS256'], issuer: t.issuer, audience: t.fhirBase, clockTolerance: CLOCK_TOLERANCE_SECONDS });
  } catch (err) {
    throw invalidToken(err instanceof Error ? err.message : 'invalid token');
  }
  const parsed = AccessClaims.safeParse(decoded);
  if (!parsed.success) throw invalidToken('token claims are not ours');
  // jsonwebtoken checks exp and nbf but not a token issued in the future (a wrong clock or a forgery).
  if (parsed.data.iat > Date.now() / 1000 + CLOCK_TOLERANCE_SECONDS) throw invalidToken('token issued in the future');
  return parsed.data;
}

/** The challenge to a request that sent no Bearer token: RFC 6750 §3.1, no error code then. */
export const bearerChallenge = (fhirBase: string): string => `Bearer realm="${fhirBase}"`;

/** The 401 to a request that sent no Bearer token, with that challenge. */
export const bearerTokenRequired = (fhirBase: string) => unauthorized('A bearer access token is required', bearerChallenge(fhirBase));

export function invalidToken(reason: string) {
  return unauthorized(`Invalid access token: ${reason}`, `Bearer error="invalid_token", error_description="${reason.replace(/"/g, "'")}"`);
}

export function accessContextOf(claims: AccessClaims): AccessContext {
  const scopes = ScopeSet.parse(claims.scope);
  const kind = scopes.resourceScopes.some((s) => s.context === 'system') ? 'system' : scopes.resourceScopes.every((s) => s.context === 'patient') && claims.patient ? 'patient' : 'user';
  return { kind, clientId: claims.client_id, scopes: scopes.scopes, fhirUser: claims.fhirUser, patient: claims.patient, roles: claims.roles, organization: claims.organization, tokenId: claims.jti, grantId: claims.gid };
}
