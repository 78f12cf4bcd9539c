import { PGlite, type Transaction } from '@electric-sql/pglite';
import { PLANNER_SETTINGS, settingOptions, type SqlConnection, type SqlRows } from './connection.js';

type Queryable = Pick<PGlite, 'query'> | Transaction;

/**
 * PGlite hands its lock from one waiting statement or transaction to the next in promise callbacks,
 * and the event loop reads no socket until those run out: under a load of `$submit`s, requests waited
 * up to 7 s unread while each took under 0.3 s once read. Each statement outside a transaction, and
 * each transaction, therefore starts on a new turn of the event loop.
 */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

class PgliteConnection implements SqlConnection {
  constructor(
    private readonly db: PGlite,
    private readonly tx?: Transaction,
  ) {}

  get inTransaction(): boolean {
    return this.tx !== undefined;
  }

  async query(sql: string, params: unknown[] = []): Promise<SqlRows> {
    if (!this.tx) await nextTurn();
    const target: Queryable = this.tx ?? this.db;
    const result = await target.query<Record<string, unknown>>(sql, params);
    return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
  }

  async transaction<T>(fn: (conn: SqlConnection) => Promise<T>): Promise<T> {
    if (this.tx) return fn(this);
    return this.db.transaction(async (tx) => {
      await nextTurn();
      return fn(new PgliteConnection(this.db, tx));
    });
  }

  async close(): Promise<void> {
    if (!this.tx && !this.db.closed) await this.db.close();
  }
}

/** Embedded PostgreSQL (WASM) with its data in `dataDir`; `memory://` for an in-memory database. */
export async function openPglite(dataDir: string, loadDataDir?: Blob): Promise<SqlConnection> {
  const db = await PGlite.create(dataDir, { startParams: [...PGlite.defaultStartParams, ...settingOptions({ ...PLANNER_SETTINGS, ...PGLITE_SETTINGS })], ...(loadDataDir ? { loadDataDir } : {}) });
  return wrapPglite(db);
}

/** Settings for the embedded engine, which shares one process (and its memory) with the server. */
const PGLITE_SETTINGS = {
  // WebAssembly memory never shrinks: a pool of 32 MB rather than 128 keeps the process smaller, and the
  // pages it does not hold are one read away in the OS page cache.
  shared_buffers: '32MB',
};

export const wrapPglite = (db: PGlite): SqlConnection => new PgliteConnection(db);
