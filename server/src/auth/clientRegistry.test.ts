import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { FhirStore } from '../storage/FhirStore.js';
import { ClientRegistry } from './clientRegistry.js';

/** Reading the clients file touches no storage. */
const noStore = {} as FhirStore;
const jwk = () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' });
const backend = (keys: Record<string, unknown>[]) => ({ client_id: 'ipa-system', type: 'confidential-asymmetric', scope: 'system/*.rs', jwks: { keys } });

describe('the clients file', () => {
  const file = join(tmpdir(), `so-clients-${randomUUID()}.json`);
  const load = (clients: unknown[]) => {
    writeFileSync(file, JSON.stringify(clients));
    return () => ClientRegistry.fromFile(noStore, file, []);
  };
  afterEach(() => rmSync(file, { force: true }));

  it.each<[string, Record<string, unknown>[], RegExp]>([
    ['a key without a kid', [{ ...jwk(), kid: 'k1' }, jwk()], /0\.jwks\.keys\.1\.kid: every key needs a kid/],
    ['a key with an empty kid', [{ ...jwk(), kid: '' }], /0\.jwks\.keys\.0\.kid: every key needs a kid/],
    ['two keys sharing a kid', [{ ...jwk(), kid: 'k1' }, { ...jwk(), kid: 'k1' }], /0\.jwks\.keys\.1\.kid: duplicate kid 'k1'/],
    ['no key at all', [], /0\.jwks\.keys: a jwks needs at least one key/],
  ])('refuses at start-up a client whose jwks has %s, naming the file and the key', (_what, keys, problem) => {
    const start = load([backend(keys)]);
    expect(start).toThrow(problem);
    expect(start).toThrow(file);
  });

  it('loads a client whose keys each have their own kid', () => {
    const registry = load([backend([{ ...jwk(), kid: 'k1' }, { ...jwk(), kid: 'k2' }])])();
    expect(registry.all().map((c) => c.jwks?.keys.map((k) => k.kid))).toEqual([['k1', 'k2']]);
  });
});
