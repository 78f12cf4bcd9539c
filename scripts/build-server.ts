/**
 * `npm run build:server`: bundles the server's TypeScript into one ES module, `dist/server.js`, which
 * `npm start` runs with plain node (no TypeScript compiler at start-up). Packages stay in node_modules.
 * The process tests (test/helpers/serverProcess.ts) run this bundle; vitest's global setup builds it.
 */
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const SERVER_BUNDLE = fileURLToPath(new URL('../dist/server.js', import.meta.url));

export async function buildServer(): Promise<void> {
  await build({
    entryPoints: [fileURLToPath(new URL('../server/src/main.ts', import.meta.url))],
    outfile: SERVER_BUNDLE,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildServer();
