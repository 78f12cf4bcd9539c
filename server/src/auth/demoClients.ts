import { generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from './clientRegistry.js';

export const APP_CLIENT_ID = 'second-opinion-app';
export const DEMO_BACKEND_CLIENT_ID = 'demo-backend';

/** What the SMART app may ask for: a user-facing app, reading and writing as the signed-in user. */
export const APP_SCOPE = 'openid fhirUser launch launch/patient offline_access online_access patient/*.rs patient/*.cruds user/*.rs user/*.cruds';

/** The SMART app served at /app: a public client (PKCE), launched from the sandbox or standalone. */
export function appClient(publicUrl: string): Client {
  return {
    client_id: APP_CLIENT_ID,
    client_name: 'Second opinion (SMART app)',
    type: 'public',
    redirect_uris: [`${publicUrl}/app/index.html`, `${publicUrl}/app/`],
    launch_uri: `${publicUrl}/app/launch.html`,
    scope: APP_SCOPE,
    system_roles: [],
    origins: [publicUrl],
  };
}

/**
 * A backend-services demo client (a provider's or IPA's system) with an RS384 key kept in
 * `<dataDir>/keys/demo-backend-client.json`, so scripts can sign client assertions with it.
 */
export function demoBackendClient(dataDir: string): { client: Client; privateKeyPem: string; kid: string } {
  const file = join(dataDir, 'keys', 'demo-backend-client.json');
  let stored: { privateKeyPem: string; publicJwk: JsonWebKey; kid: string };
  if (existsSync(file)) stored = JSON.parse(readFileSync(file, 'utf8')) as typeof stored;
  else {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    stored = { privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, publicJwk: publicKey.export({ format: 'jwk' }) as JsonWebKey, kid: 'demo-backend-1' };
    mkdirSync(join(dataDir, 'keys'), { recursive: true });
    writeFileSync(file, JSON.stringify(stored), { mode: 0o600 });
  }
  return {
    client: {
      client_id: DEMO_BACKEND_CLIENT_ID,
      client_name: 'Demo provider system (backend services)',
      type: 'confidential-asymmetric',
      redirect_uris: [],
      scope: 'system/*.rs system/*.cruds',
      jwks: { keys: [{ ...(stored.publicJwk as { kty: string }), kid: stored.kid, alg: 'RS384' }] },
      system_roles: ['delegated-group'],
      // The demo IPA's UM system: BSP delegates UM for members of bsp-ipa-a (plans.ts delegatedUm, R18).
      organization: 'bsp-ipa-a',
      origins: [],
    },
    privateKeyPem: stored.privateKeyPem,
    kid: stored.kid,
  };
}
