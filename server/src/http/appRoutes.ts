import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import express from 'express';

export const APP_DIST = fileURLToPath(new URL('../../../smart-app/dist/', import.meta.url));

/** Serves the built SMART app at /app (built by `npm run build:app`; `npm start` builds it). */
export function appRouter(): express.Router[] {
  if (!existsSync(APP_DIST)) return [];
  const router = express.Router();
  router.use('/app', express.static(APP_DIST, { index: 'index.html', maxAge: '5m' }));
  return [router];
}
