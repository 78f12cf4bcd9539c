#!/usr/bin/env bash
# `npm test`: type-check, then every vitest suite (unit, storage on PGlite and PostgreSQL, API,
# security, end-to-end in Chromium). TEST_DATABASE_URL selects the PostgreSQL server; without it
# the PostgreSQL suites are skipped and the run says so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-chromium.sh
npx tsc --noEmit -p tsconfig.json
npm run build:app --if-present
npx vitest run "$@"
