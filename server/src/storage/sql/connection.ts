/** The seam under the SQL store: swapping drivers touches only the files implementing this. */
export interface SqlRows {
  rows: Record<string, unknown>[];
  rowCount: number;
}

export interface SqlConnection {
  query(sql: string, params?: unknown[]): Promise<SqlRows>;
  /**
   * Set where several server processes share the database: a change announced in a transaction
   * (`announce`) reaches every process's listener (`listen`) when it commits.
   */
  readonly changes?: ChangeChannel;
  /** Runs `fn` inside BEGIN/COMMIT on one connection; ROLLBACK if it throws. Nested calls reuse it. */
  transaction<T>(fn: (conn: SqlConnection) => Promise<T>): Promise<T>;
  readonly inTransaction: boolean;
  close(): Promise<void>;
}

/**
 * Planner settings of every session the server opens, on either driver. At a random_page_cost of 4 the
 * planner costs a random page as if read from a spinning disk, and preferred hashing every Task's due
 * date (6-8 ms) over walking the date index in order (0.6 ms) for the UM desk's sort by due at 100k on
 * PostgreSQL (PGlite alike: 121 against 6.9 ms). Database files live on SSDs or in the page cache.
 */
export const PLANNER_SETTINGS: Readonly<Record<string, string>> = {
  random_page_cost: '1.1',
  // Statements are prepared once per session (both drivers) but planned for each run's values: after five
  // runs PostgreSQL may switch to one generic plan, which for the UM desk's sort by due walked every Task.
  plan_cache_mode: 'force_custom_plan',
};

/**
 * The first this many distinct SQL texts a connection runs become named prepared statements, which each
 * database session parses once (the store's own statements and the usual search shapes); later texts are
 * parsed on each run, so that arbitrary searches cannot grow a session's memory without bound.
 */
export const NAMED_STATEMENTS = 200;

/** Settings as server start-up options (`-c name=value`). */
export const settingOptions = (settings: Readonly<Record<string, string>>): string[] => Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]);

export interface ChangeChannel {
  /** Sent inside the writing transaction; PostgreSQL delivers it on commit, and never on rollback. */
  announce(conn: SqlConnection, resourceType: string): Promise<void>;
  /**
   * Calls `changed` for each announced change. `lost` is called when announcements may be missed
   * (the listening session is gone, until it is back) and `ready` once listening again.
   */
  listen(handlers: { changed(resourceType: string): void; lost(): void; ready(): void }): void;
}

/** PostgreSQL could not let concurrent transactions all go on: deadlock_detected, serialization_failure, lock_not_available. */
export function isLockConflict(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === '40P01' || code === '40001' || code === '55P03';
}

/** Errors from the database that mean "try again later" (connection lost, server shutting down). */
export function isTransientDbError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  if (typeof code === 'string' && /^(08|57P0)/.test(code)) return true;
  const message = err instanceof Error ? err.message : '';
  return /ECONNREFUSED|ECONNRESET|EPIPE|Connection terminated|terminating connection|not queryable|timeout exceeded when trying to connect|the database system is (starting|shutting|in recovery)/i.test(message);
}
