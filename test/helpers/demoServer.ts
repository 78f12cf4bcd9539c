import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildParts } from '../../server/src/compose.js';
import { createLogger } from '../../server/src/log.js';
import { startServer, type RunningServer } from '../../server/src/server.js';
import type { StoreConfig } from '../../server/src/storage/connect.js';
import { pgliteConfig } from './stores.js';
import { testConfig } from './testServer.js';

export interface DemoServer extends RunningServer {
  dataDir: string;
}

/** The whole server as `npm start` runs it (auth on, demo data, sandbox), on a random port and a temp data folder. */
export async function startDemoServer(store: StoreConfig = pgliteConfig(), env: Record<string, string> = {}): Promise<DemoServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'so-demo-'));
  const config = testConfig(store, { DEMO_MODE: 'true', AUTH_REQUIRED: 'true', DATA_DIR: dataDir, OUTBOX_ENABLED: 'false', ...env });
  const server = await startServer(config, buildParts, createLogger('silent'));
  return {
    ...server,
    dataDir,
    close: async () => {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
