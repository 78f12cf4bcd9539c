/** The seam under the SQL store: swapping drivers touches only the files implementing this. */
export interface SqlRows {
  rows: Record<string, unknown>[];
  rowCount: number;
}

export interface SqlConnection {
  query(sql: string, params?: unknown[]): Promise<SqlRows>;
  /** Runs `fn` inside BEGIN/COMMIT on one connection; ROLLBACK if it throws. Nested calls reuse it. */
  transaction<T>(fn: (conn: SqlConnection) => Promise<T>): Promise<T>;
  readonly inTransaction: boolean;
  close(): Promise<void>;
}

/** Errors from the database that mean "try again later" (connection lost, server shutting down). */
export function isTransientDbError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  if (typeof code === 'string' && /^(08|57P0)/.test(code)) return true;
  const message = err instanceof Error ? err.message : '';
  return /ECONNREFUSED|ECONNRESET|EPIPE|Connection terminated|terminating connection|not queryable|timeout exceeded when trying to connect|the database system is (starting|shutting|in recovery)/i.test(message);
}
