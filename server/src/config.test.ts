import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

describe('configuration from the environment', () => {
  it('has working defaults: PGlite in ./data, FHIR base under PUBLIC_URL', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.store).toEqual({ driver: 'pglite', dataDir: './data/pg' });
    expect(c.fhirBase).toBe('http://127.0.0.1:8080/fhir');
    expect(c.demoMode).toBe(false);
    expect(c.sandboxEnabled).toBe(false);
  });
  it('uses PostgreSQL when DATABASE_URL is set and honours PUBLIC_URL', () => {
    const c = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/x', PUBLIC_URL: 'https://plan.example.org/' });
    expect(c.store.driver).toBe('postgres');
    expect(c.fhirBase).toBe('https://plan.example.org/fhir');
  });
  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ DEMO_MODE: 'maybe' }, 'DEMO_MODE'],
    [{ PUBLIC_URL: 'not a url' }, 'PUBLIC_URL'],
  ])('a bad value stops start-up with a message naming it: %o', (env, name) => {
    expect(() => loadConfig(env)).toThrow(new RegExp(`Invalid configuration: .*${name}`));
  });
});
