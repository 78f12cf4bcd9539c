import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** Environment configuration, validated at start: a bad value stops start-up with a clear message. */
export const EnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  PUBLIC_URL: z.url().optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  DATABASE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]*$/).optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(5 * 1024 * 1024),
  MAX_BUNDLE_ENTRIES: z.coerce.number().int().min(1).default(1000),
  DEMO_MODE: bool.default(false),
  AUDIT_ENABLED: bool.default(true),
  AUTH_REQUIRED: bool.default(true),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  CLIENTS_FILE: z.string().optional(),
  SANDBOX_ENABLED: bool.optional(),
  OUTBOX_ENABLED: bool.default(true),
  OUTBOUND_CONFIG_FILE: z.string().optional(),
  TRUSTED_ISSUERS_FILE: z.string().optional(),
  ACCESS_TOKEN_SECONDS: z.coerce.number().int().min(60).max(86400).default(3600),
  TOKEN_REQUESTS_PER_MINUTE: z.coerce.number().int().min(1).default(600),
});

export type Env = z.infer<typeof EnvSchema>;

export interface ServerConfig {
  port: number;
  host: string;
  publicUrl: string;
  fhirBase: string;
  store: { driver: 'pglite'; dataDir: string; loadDataDir?: Blob } | { driver: 'postgres'; databaseUrl: string; schema?: string; poolSize: number };
  dataDir: string;
  maxBodyBytes: number;
  maxBundleEntries: number;
  demoMode: boolean;
  sandboxEnabled: boolean;
  auditEnabled: boolean;
  authRequired: boolean;
  logLevel: Env['LOG_LEVEL'];
  clientsFile?: string;
  outboxEnabled: boolean;
  outboundConfigFile?: string;
  trustedIssuersFile?: string;
  accessTokenSeconds: number;
  tokenRequestsPerMinute: number;
}

export function loadConfig(env: Record<string, string | undefined> = process.env): ServerConfig {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`Invalid configuration: ${problems}`);
  }
  return fromEnv(parsed.data);
}

export function fromEnv(e: Env): ServerConfig {
  const publicUrl = (e.PUBLIC_URL ?? `http://${e.HOST === '0.0.0.0' ? 'localhost' : e.HOST}:${e.PORT}`).replace(/\/$/, '');
  return {
    port: e.PORT,
    host: e.HOST,
    publicUrl,
    fhirBase: `${publicUrl}/fhir`,
    store: e.DATABASE_URL
      ? { driver: 'postgres', databaseUrl: e.DATABASE_URL, schema: e.DATABASE_SCHEMA, poolSize: e.DATABASE_POOL_SIZE }
      : { driver: 'pglite', dataDir: `${e.DATA_DIR.replace(/\/$/, '')}/pg` },
    dataDir: e.DATA_DIR,
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxBundleEntries: e.MAX_BUNDLE_ENTRIES,
    demoMode: e.DEMO_MODE,
    sandboxEnabled: e.SANDBOX_ENABLED ?? e.DEMO_MODE,
    auditEnabled: e.AUDIT_ENABLED,
    authRequired: e.AUTH_REQUIRED,
    logLevel: e.LOG_LEVEL,
    clientsFile: e.CLIENTS_FILE,
    outboxEnabled: e.OUTBOX_ENABLED,
    outboundConfigFile: e.OUTBOUND_CONFIG_FILE,
    trustedIssuersFile: e.TRUSTED_ISSUERS_FILE,
    accessTokenSeconds: e.ACCESS_TOKEN_SECONDS,
    tokenRequestsPerMinute: e.TOKEN_REQUESTS_PER_MINUTE,
  };
}
