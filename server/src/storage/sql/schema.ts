import type { Resource } from 'fhir/r4.js';
import { type Indexer, undatedToken } from '../../fhir/search/indexer.js';
import type { SqlConnection } from './connection.js';

/** Written out, not derived from the served types: a released migration never changes. */
const PARTITIONED_TYPES = [
  'Patient', 'RelatedPerson', 'Practitioner', 'PractitionerRole', 'Organization', 'Location', 'Endpoint', 'CareTeam', 'Coverage',
  'ServiceRequest', 'Task', 'CoverageEligibilityRequest', 'CoverageEligibilityResponse', 'Condition', 'DocumentReference',
  'DiagnosticReport', 'Communication', 'Provenance', 'AuditEvent', 'Subscription', 'MeasureReport', 'Basic',
];

/** Migration 6: adds `#_profile`, `#_tag`, `#_security` to the tokens of the rows that have such values and not the mark. */
const markMetaValues = (table: string) => `
  UPDATE ${table} SET tokens = tokens || ARRAY(SELECT DISTINCT '#' || split_part(t, '|', 1) FROM unnest(tokens) t WHERE split_part(t, '|', 1) IN ('_profile', '_tag', '_security') AND NOT ('#' || split_part(t, '|', 1)) = ANY(tokens))
  WHERE EXISTS (SELECT 1 FROM unnest(tokens) t WHERE split_part(t, '|', 1) IN ('_profile', '_tag', '_security') AND NOT ('#' || split_part(t, '|', 1)) = ANY(tokens))`;

/**
 * Migration 8: adds undatedToken to the tokens of the stored rows without a value for a date parameter of their type,
 * as the indexer now does (for the date parameters served when it runs; one added later needs `npm run reindex`).
 */
function markUndated(dateParams: [string, string][]): string {
  if (!dateParams.length) return 'SELECT 1';
  const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
  const served = dateParams.map(([type, param]) => `(${literal(type)}, ${literal(param)}, ${literal(undatedToken(param))})`).join(', ');
  return `
  UPDATE resources r SET tokens = r.tokens || m.marks
  FROM (SELECT u.res_type, u.id, array_agg(s.mark) AS marks
        FROM resources u JOIN (VALUES ${served}) s (res_type, param, mark) ON s.res_type = u.res_type
        WHERE NOT u.deleted AND NOT EXISTS (SELECT 1 FROM sp_date d WHERE d.res_type = u.res_type AND d.id = u.id AND d.param = s.param) AND NOT s.mark = ANY(u.tokens)
        GROUP BY u.res_type, u.id) m
  WHERE r.res_type = m.res_type AND r.id = m.id`;
}

/** How many stored rows migration 9 reads and rewrites at a time (their JSON is parsed in the server). */
const SOUND_BATCH = 1000;

/**
 * Migration 9: the phonetic parameters were indexed as strings and matched as prefixes; the indexer now writes
 * the sounds of the names as tokens (soundToken). Double Metaphone runs in JavaScript, not in SQL, so the rows of
 * the types with such a parameter are read in batches, given their sound tokens, and their string rows dropped.
 */
async function addSoundTokens(tx: SqlConnection, indexer: Indexer): Promise<void> {
  for (const [type, def] of indexer.phoneticParams()) {
    for (let after = ''; ; ) {
      const { rows } = await tx.query(`SELECT id, content::text AS content FROM resources WHERE res_type = $1 AND id > $2 AND NOT deleted ORDER BY id LIMIT ${SOUND_BATCH}`, [type, after]);
      if (!rows.length) break;
      const sounds = rows.map((row) => indexer.soundTokens(def, JSON.parse(String(row.content)) as Resource).join('\u001f'));
      await tx.query(
        `UPDATE resources r SET tokens = r.tokens || ARRAY(SELECT t FROM unnest(string_to_array(u.tk, chr(31))) t WHERE NOT t = ANY(r.tokens))
         FROM unnest($2::text[], $3::text[]) AS u(i, tk) WHERE r.res_type = $1 AND r.id = u.i AND u.tk <> ''`,
        [type, rows.map((row) => String(row.id)), sounds],
      );
      after = String(rows[rows.length - 1].id);
    }
    await tx.query('DELETE FROM sp_string WHERE res_type = $1 AND param = $2', [type, def.code]);
  }
}

type Migration = { version: number } & ({ sql: string | ((indexer: Indexer) => string) } | { run: (tx: SqlConnection, indexer: Indexer) => Promise<void> });

/**
 * Schema migrations, applied in order on start. Each runs once, in a transaction, and is recorded
 * in schema_migrations. Never edit a released migration; add a new one.
 */
const MIGRATIONS: Migration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE resources (
        res_type text NOT NULL,
        id text NOT NULL,
        version_id integer NOT NULL,
        last_updated timestamptz NOT NULL,
        deleted boolean NOT NULL DEFAULT false,
        content json,
        tokens text[] NOT NULL DEFAULT '{}',
        refs text[] NOT NULL DEFAULT '{}',
        compartments text[] NOT NULL DEFAULT '{}',
        PRIMARY KEY (res_type, id)
      );
      CREATE INDEX resources_tokens ON resources USING gin (tokens);
      CREATE INDEX resources_refs ON resources USING gin (refs);
      CREATE INDEX resources_compartments ON resources USING gin (compartments);
      CREATE INDEX resources_updated ON resources (res_type, last_updated);

      CREATE TABLE resource_history (
        res_type text NOT NULL,
        id text NOT NULL,
        version_id integer NOT NULL,
        last_updated timestamptz NOT NULL,
        deleted boolean NOT NULL DEFAULT false,
        content json,
        PRIMARY KEY (res_type, id, version_id)
      );
      CREATE INDEX resource_history_updated ON resource_history (last_updated);
      CREATE INDEX resource_history_type_updated ON resource_history (res_type, last_updated);

      CREATE TABLE sp_string (
        res_type text NOT NULL,
        id text NOT NULL,
        param text NOT NULL,
        value text NOT NULL,
        exact text NOT NULL
      );
      CREATE INDEX sp_string_value ON sp_string (res_type, param, value text_pattern_ops);
      CREATE INDEX sp_string_res ON sp_string (res_type, id);

      CREATE TABLE sp_date (
        res_type text NOT NULL,
        id text NOT NULL,
        param text NOT NULL,
        lo timestamptz NOT NULL,
        hi timestamptz NOT NULL
      );
      CREATE INDEX sp_date_lo ON sp_date (res_type, param, lo);
      CREATE INDEX sp_date_hi ON sp_date (res_type, param, hi);
      CREATE INDEX sp_date_res ON sp_date (res_type, id);

      CREATE TABLE sp_number (
        res_type text NOT NULL,
        id text NOT NULL,
        param text NOT NULL,
        value numeric NOT NULL,
        system text NOT NULL,
        unit text NOT NULL
      );
      CREATE INDEX sp_number_value ON sp_number (res_type, param, value);
      CREATE INDEX sp_number_res ON sp_number (res_type, id);

      CREATE TABLE outbox (
        id text PRIMARY KEY,
        kind text NOT NULL,
        payload jsonb NOT NULL,
        dedupe_key text UNIQUE,
        status text NOT NULL DEFAULT 'pending',
        attempts integer NOT NULL DEFAULT 0,
        not_before timestamptz NOT NULL DEFAULT now(),
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        sent_at timestamptz
      );
      CREATE INDEX outbox_pending ON outbox (status, not_before);

      CREATE TABLE ephemeral (
        key text PRIMARY KEY,
        value jsonb,
        expires_at timestamptz NOT NULL
      );
      CREATE INDEX ephemeral_expiry ON ephemeral (expires_at);
    `,
  },
  {
    // Sorting by a date, string or number parameter looks up each matched row's values: index them
    // by row and parameter (found by the benchmark's query plans: the old index scanned the parameter).
    version: 2,
    sql: `
      CREATE INDEX sp_date_row ON sp_date (res_type, id, param, lo);
      DROP INDEX sp_date_res;
      CREATE INDEX sp_string_row ON sp_string (res_type, id, param, value);
      DROP INDEX sp_string_res;
      CREATE INDEX sp_number_row ON sp_number (res_type, id, param, value);
      DROP INDEX sp_number_res;
    `,
  },
  {
    // One partition of `resources` per clinical type. The planner then has statistics per type: with
    // one table, `business-status=um-review` on Tasks was estimated as if any resource could hold it
    // (159 rows expected, 24,949 found at 1M resources), so it sorted every match instead of walking
    // the date index. Each type's GIN indexes are also smaller. Types not listed (and any added later)
    // go to the default partition; give one its own partition in a new migration that moves its rows.
    // New GIN entries wait in a pending list that every search of the index reads in full until it is
    // merged (at 4 MB by default, or by VACUUM): at 100k resources a one-patient search read 200 pages
    // (8 ms) of it. 256 kB keeps that short; merging more often costs writes little.
    version: 3,
    sql: `
      CREATE TABLE resources_by_type (LIKE resources INCLUDING DEFAULTS) PARTITION BY LIST (res_type);
      ${PARTITIONED_TYPES.map((type) => `CREATE TABLE resources_${type.toLowerCase()} PARTITION OF resources_by_type FOR VALUES IN ('${type}')`).join(';\n')};
      CREATE TABLE resources_other PARTITION OF resources_by_type DEFAULT;
      INSERT INTO resources_by_type SELECT * FROM resources;
      DROP TABLE resources;
      ALTER TABLE resources_by_type RENAME TO resources;
      ALTER TABLE resources ADD CONSTRAINT resources_pkey PRIMARY KEY (res_type, id);
      CREATE INDEX resources_tokens ON resources USING gin (tokens) WITH (gin_pending_list_limit = 256);
      CREATE INDEX resources_refs ON resources USING gin (refs) WITH (gin_pending_list_limit = 256);
      CREATE INDEX resources_compartments ON resources USING gin (compartments) WITH (gin_pending_list_limit = 256);
      CREATE INDEX resources_updated ON resources (res_type, last_updated);
      ANALYZE resources
    `,
  },
  {
    // AuditEvents move to an append-only table of their own. Every request writes one, and in the
    // clinical index each cost about 200 µs on PGlite: a history row, GIN entries for 35 tokens,
    // date and string index rows (bench/profile.ts). An AuditEvent never changes, so it needs no
    // history row; it keeps its token, reference and compartment arrays (searched as filters) and is
    // found by the indexes audit searches start from: when it was recorded and whom it names.
    // `res_type` and `deleted` are constants so the search SQL of `resources` runs here unchanged.
    version: 4,
    sql: `
      CREATE TABLE audit_events (
        res_type text NOT NULL DEFAULT 'AuditEvent' CHECK (res_type = 'AuditEvent'),
        id text PRIMARY KEY,
        deleted boolean NOT NULL DEFAULT false CHECK (NOT deleted),
        last_updated timestamptz NOT NULL,
        recorded timestamptz NOT NULL,
        content json NOT NULL,
        tokens text[] NOT NULL DEFAULT '{}',
        refs text[] NOT NULL DEFAULT '{}',
        compartments text[] NOT NULL DEFAULT '{}'
      );
      CREATE INDEX audit_events_recorded ON audit_events (recorded);
      CREATE INDEX audit_events_updated ON audit_events (last_updated);
      CREATE INDEX audit_events_refs ON audit_events USING gin (refs) WITH (gin_pending_list_limit = 256);
      INSERT INTO audit_events (id, last_updated, recorded, content, tokens, refs, compartments)
        SELECT r.id, r.last_updated, COALESCE((SELECT min(d.lo) FROM sp_date d WHERE d.res_type = r.res_type AND d.id = r.id AND d.param = 'date'), r.last_updated),
               r.content, r.tokens, r.refs, r.compartments
        FROM resources r WHERE r.res_type = 'AuditEvent' AND NOT r.deleted;
      DELETE FROM sp_string WHERE res_type = 'AuditEvent';
      DELETE FROM sp_date WHERE res_type = 'AuditEvent';
      DELETE FROM sp_number WHERE res_type = 'AuditEvent';
      DELETE FROM resource_history WHERE res_type = 'AuditEvent';
      DELETE FROM resources WHERE res_type = 'AuditEvent'
    `,
  },
  {
    // PGlite runs ANALYZE on the thread that serves requests, so the minute's statistics refresh held
    // every request while it sampled: 0.6-0.9 s for audit_events at 60k events, mostly decompressing
    // each sampled row's JSON and counting the elements of its 35 tokens. No search filters on the
    // JSON, and audit searches start from `recorded` or the references' GIN index, not the tokens:
    // those columns need no statistics (0.2 s after this).
    version: 5,
    sql: `
      ALTER TABLE resources ALTER COLUMN content SET STATISTICS 0;
      ALTER TABLE resource_history ALTER COLUMN content SET STATISTICS 0;
      ALTER TABLE audit_events ALTER COLUMN content SET STATISTICS 0, ALTER COLUMN tokens SET STATISTICS 0, ALTER COLUMN compartments SET STATISTICS 0
    `,
  },
  {
    // `:missing` on `_profile`, `_tag` and `_security` looked for a token with the parameter's prefix in every
    // row of the type (0.2-0.4 s for 10k Tasks on PostgreSQL). The indexer now adds the `#param` token that marks
    // a value, as for every other parameter, so `:missing=false` is a GIN lookup; this adds it to stored rows
    // (a scan of each table once; rows with meta values are rewritten, no reindex needed).
    version: 6,
    sql: `
      ${markMetaValues('resources')};
      ${markMetaValues('audit_events')}
    `,
  },
  {
    // The events of each topic-based Subscription, for the backport IG's `$events`: written in the
    // transaction that numbers the event, kept for a bounded time and count (outbound config
    // subscriptions.eventRetention), found by subscription and number, pruned by age.
    version: 7,
    sql: `
      CREATE TABLE subscription_events (
        subscription_id text NOT NULL,
        event_number bigint NOT NULL,
        occurred_at timestamptz NOT NULL,
        focus_type text NOT NULL,
        focus_id text NOT NULL,
        focus_version text NOT NULL,
        created boolean NOT NULL,
        PRIMARY KEY (subscription_id, event_number)
      );
      CREATE INDEX subscription_events_occurred ON subscription_events (occurred_at)
    `,
  },
  {
    // The last page of a search sorted by a date (`_sort=due`, its `last` link) reads the matches without the date
    // first, found by the absence of a date row: every resource of the type was read (190 ms for 10k Tasks on
    // PostgreSQL when none lacked a due date). The indexer now marks them (undatedToken), found through the GIN index.
    version: 8,
    sql: (indexer) => markUndated(indexer.dateParams()),
  },
  {
    // `phonetic=Garsia` found no Garcia, and `phonetic=gar` did: the parameter was a prefix match on the names.
    version: 9,
    run: addSoundTokens,
  },
];

async function apply(migration: Migration, tx: SqlConnection, indexer: Indexer): Promise<void> {
  if ('run' in migration) return migration.run(tx, indexer);
  const sql = typeof migration.sql === 'string' ? migration.sql : migration.sql(indexer);
  for (const statement of sql.split(';').map((x) => x.trim()).filter(Boolean)) await tx.query(statement);
}

/** Applies the migrations not yet applied, up to `upTo` (all of them by default; tests stop earlier). */
export async function migrate(conn: SqlConnection, indexer: Indexer, upTo = Infinity): Promise<void> {
  await conn.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
  const applied = new Set((await conn.query('SELECT version FROM schema_migrations')).rows.map((r) => Number(r.version)));
  for (const migration of MIGRATIONS.filter((m) => m.version <= upTo && !applied.has(m.version))) {
    await conn.transaction(async (tx) => {
      // Two server processes starting on one database must not both apply a migration.
      await tx.query('SELECT pg_advisory_xact_lock(727274)');
      const done = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [migration.version]);
      if (done.rows.length) return;
      await apply(migration, tx, indexer);
      await tx.query('INSERT INTO schema_migrations (version) VALUES ($1)', [migration.version]);
    });
  }
}
