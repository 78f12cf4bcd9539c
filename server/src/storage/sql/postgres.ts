import pg from 'pg';
import { lockConflict, serviceUnavailable } from '../../fhir/outcomes.js';
import { type ChangeChannel, isLockConflict, isTransientDbError, NAMED_STATEMENTS, PLANNER_SETTINGS, settingOptions, type SqlConnection, type SqlRows } from './connection.js';

// Return timestamptz as Date and bigint counts as numbers (counts here stay far below 2^53).
pg.types.setTypeParser(20, (v: string) => Number(v));

/** A name for each of the first NAMED_STATEMENTS SQL texts, for every session of a pool; pg prepares a name on a session at its first use there. */
class StatementNames {
  private readonly names = new Map<string, string>();

  query(text: string, values: unknown[]): pg.QueryConfig {
    let name = this.names.get(text);
    if (name === undefined && this.names.size < NAMED_STATEMENTS) this.names.set(text, (name = `s${this.names.size + 1}`));
    return { name, text, values };
  }
}

class PoolConnection implements SqlConnection {
  readonly inTransaction = false;
  constructor(
    private readonly pool: pg.Pool,
    readonly changes: ChangeListener,
    private readonly statements: StatementNames,
  ) {}

  async query(sql: string, params: unknown[] = []): Promise<SqlRows> {
    const result = await this.pool.query(this.statements.query(sql, params)).catch(unavailable);
    return { rows: result.rows as Record<string, unknown>[], rowCount: result.rowCount ?? 0 };
  }

  async transaction<T>(fn: (conn: SqlConnection) => Promise<T>): Promise<T> {
    const client = await this.pool.connect().catch(unavailable);
    // A checked-out client whose server goes away emits 'error'; unhandled, that would end the process.
    let broken: Error | undefined;
    const onError = (err: Error) => (broken = err);
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const result = await fn(new ClientConnection(client, this.changes, this.statements));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      if (!broken) await client.query('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError));
      return unavailable(err);
    } finally {
      client.off('error', onError);
      client.release(broken ?? false);
    }
  }

  async close(): Promise<void> {
    await this.changes.close();
    await this.pool.end();
  }
}

/** A transaction PostgreSQL aborted for another's sake (a deadlock, say) is the client's to retry: 409 lock-error, not 500. */
function conflicted(err: unknown): never {
  if (isLockConflict(err)) throw lockConflict('A concurrent transaction holds what this one needs; nothing was written: retry');
  throw err;
}

/** A lost or restarting database is the server's temporary trouble: 503 with Retry-After, not 500. */
function unavailable(err: unknown): never {
  if (isTransientDbError(err)) throw serviceUnavailable('The database is unavailable; retry shortly', 2);
  throw err;
}

class ClientConnection implements SqlConnection {
  readonly inTransaction = true;
  constructor(
    private readonly client: pg.PoolClient,
    readonly changes: ChangeChannel,
    private readonly statements: StatementNames,
  ) {}

  async query(sql: string, params: unknown[] = []): Promise<SqlRows> {
    const result = await this.client.query(this.statements.query(sql, params)).catch(conflicted);
    return { rows: result.rows as Record<string, unknown>[], rowCount: result.rowCount ?? 0 };
  }

  async transaction<T>(fn: (conn: SqlConnection) => Promise<T>): Promise<T> {
    return fn(this);
  }

  async close(): Promise<void> {}
}

/** A PostgreSQL server through `pg`. `schema` (created if missing) isolates tests and tenants. */
export async function openPostgres(connectionString: string, options: { schema?: string; max?: number } = {}): Promise<SqlConnection> {
  const { schema, max = 10 } = options;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error('Invalid schema name');
  if (schema) {
    const setup = new pg.Client({ connectionString });
    await setup.connect();
    try {
      await setup.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    } finally {
      await setup.end();
    }
  }
  const sessionOptions = settingOptions({ ...PLANNER_SETTINGS, ...(schema ? { search_path: schema } : {}) }).join(' ');
  const pool = new pg.Pool({ connectionString, max, connectionTimeoutMillis: 5_000, options: sessionOptions });
  pool.on('error', () => undefined); // an idle client lost its server; the next query reconnects
  // pg emits 'error' on a client whose server went away between queries; the query in flight gets the
  // error anyway, and an emitter error with no listener would end the process.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return new PoolConnection(pool, new ChangeListener({ connectionString, options: sessionOptions }, `fhir_changes_${schema ?? 'public'}`), new StatementNames());
}

const RELISTEN_MS = 1_000;

/**
 * LISTEN/NOTIFY on one channel per schema, through a session of its own (a pooled one would stop
 * listening when returned). A lost session is replaced every second until one answers.
 */
class ChangeListener implements ChangeChannel {
  private handlers?: Parameters<ChangeChannel['listen']>[0];
  private session?: pg.Client;
  private retry?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly clientConfig: pg.ClientConfig,
    private readonly channel: string,
  ) {}

  async announce(conn: SqlConnection, resourceType: string): Promise<void> {
    await conn.query('SELECT pg_notify($1, $2)', [this.channel, resourceType]);
  }

  listen(handlers: Parameters<ChangeChannel['listen']>[0]): void {
    this.handlers = handlers;
    void this.connect();
  }

  private async connect(): Promise<void> {
    const session = new pg.Client(this.clientConfig);
    session.on('error', () => undefined); // 'end' follows; the session is replaced then
    session.on('notification', (message) => {
      if (message.channel === this.channel && message.payload) this.handlers?.changed(message.payload);
    });
    session.on('end', () => this.lose(session));
    try {
      await session.connect();
      await session.query(`LISTEN ${this.channel}`);
    } catch {
      this.lose(session);
      await session.end().catch(() => undefined);
      return;
    }
    if (this.closed) return void (await session.end());
    this.session = session;
    this.handlers?.ready();
  }

  private lose(session: pg.Client): void {
    if (this.session === session) this.session = undefined;
    this.handlers?.lost();
    if (this.closed || this.retry || this.session) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.connect();
    }, RELISTEN_MS).unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.session?.end();
  }
}
