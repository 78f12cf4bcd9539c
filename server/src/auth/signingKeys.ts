import { createPrivateKey, createPublicKey, generateKeyPairSync, type JsonWebKey, type KeyObject, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SigningKey {
  kid: string;
  privateKeyPem: string;
  publicKeyPem: string;
  publicJwk: JsonWebKey & { kid: string; alg: string; use: string };
  /** Parsed once: jsonwebtoken would otherwise parse the PEM on every verification. */
  publicKey: KeyObject;
  privateKey: KeyObject;
}

/**
 * The server's RS256 signing key for access and id tokens. Kept in `<dataDir>/keys/` so tokens
 * survive a restart and `npm run demo-token` can sign with the running server's key; `memory`
 * generates one for the process (tests).
 */
export function loadSigningKey(dataDir: string | 'memory'): SigningKey {
  if (dataDir !== 'memory') {
    const file = join(dataDir, 'keys', 'signing-key.json');
    if (existsSync(file)) return fromStored(JSON.parse(readFileSync(file, 'utf8')) as { kid: string; privateKeyPem: string });
    const key = generate();
    mkdirSync(join(dataDir, 'keys'), { recursive: true });
    writeFileSync(file, JSON.stringify({ kid: key.kid, privateKeyPem: key.privateKeyPem }), { mode: 0o600 });
    return key;
  }
  return generate();
}

function generate(): SigningKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return fromStored({ kid: randomUUID(), privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
}

function fromStored(stored: { kid: string; privateKeyPem: string }): SigningKey {
  const publicKey = createPublicKey(stored.privateKeyPem);
  return {
    kid: stored.kid,
    publicKey,
    privateKey: createPrivateKey(stored.privateKeyPem),
    privateKeyPem: stored.privateKeyPem,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    publicJwk: { ...(publicKey.export({ format: 'jwk' }) as JsonWebKey), kid: stored.kid, alg: 'RS256', use: 'sig' },
  };
}
