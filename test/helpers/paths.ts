import { fileURLToPath } from 'node:url';

export const SNAPSHOT_PATH = fileURLToPath(new URL('../../.tmp/pglite-migrated.tar', import.meta.url));
