import { existsSync } from 'node:fs';
import { join } from 'node:path';
import express from 'express';
import { PROJECT_ROOT } from '../paths.js';

export const APP_DIST = join(PROJECT_ROOT, 'smart-app/dist');

/** Serves the built SMART app at /app (built by `npm run build:app`; `npm start` builds it). */
export function appRouter(): express.Router[] {
  if (!existsSync(APP_DIST)) return [];
  const router = express.Router();
  router.use('/app', express.static(APP_DIST, { index: 'index.html', maxAge: '5m' }));
  return [router];
}
