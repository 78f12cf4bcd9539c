import { PGlite, type Transaction } from '@electric-sql/pglite';
import type { SqlConnection, SqlRows } from './connection.js';

type Queryable = Pick<PGlite, 'query'> | Transaction;

class PgliteConnection implements SqlConnection {
  constructor(
    private readonly db: PGlite,
    private readonly tx?: Transaction,
  ) {}

  get inTransaction(): boolean {
    return this.tx !== undefined;
  }

  async query(sql: string, params: unknown[] = []): Promise<SqlRows> {
    const target: Queryable = this.tx ?? this.db;
    const result = await target.query<Record<string, unknown>>(sql, params);
    return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
  }

  async transaction<T>(fn: (conn: SqlConnection) => Promise<T>): Promise<T> {
    if (this.tx) return fn(this);
    return this.db.transaction((tx) => fn(new PgliteConnection(this.db, tx)));
  }

  async close(): Promise<void> {
    if (!this.tx && !this.db.closed) await this.db.close();
  }
}

/** Embedded PostgreSQL (WASM) with its data in `dataDir`; `memory://` for an in-memory database. */
export async function openPglite(dataDir: string, loadDataDir?: Blob): Promise<SqlConnection> {
  return wrapPglite(await PGlite.create(dataDir, loadDataDir ? { loadDataDir } : {}));
}

export const wrapPglite = (db: PGlite): SqlConnection => new PgliteConnection(db);
