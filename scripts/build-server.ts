/**
 * `npm run build:server`: bundles the server's TypeScript into ES modules, `dist/server.js` and the
 * modules it imports on demand in `dist/chunks/`, which `npm start` runs with plain node (no TypeScript
 * compiler at start-up). Packages stay in node_modules.
 * The process tests (test/helpers/serverProcess.ts) run this bundle; vitest's global setup builds it.
 */
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const SERVER_BUNDLE = fileURLToPath(new URL('../dist/server.js', import.meta.url));

export async function buildServer(): Promise<void> {
  const outdir = dirname(SERVER_BUNDLE);
  rmSync(`${outdir}/chunks`, { recursive: true, force: true });
  await build({
    entryPoints: { server: fileURLToPath(new URL('../server/src/main.ts', import.meta.url)) },
    outdir,
    // Modules imported on demand (the database driver not chosen, say) go to chunks of their own, so that
    // the packages they import are not loaded at start-up either.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
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
