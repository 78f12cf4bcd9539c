import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { parse, PGlite, protocol, type Transaction } from '@electric-sql/pglite';
import { NAMED_STATEMENTS, PLANNER_SETTINGS, settingOptions, type SqlConnection, type SqlRows } from './connection.js';

/**
 * PGlite hands its lock from one waiting statement or transaction to the next in promise callbacks,
 * and the event loop reads no socket until those run out: under a load of `$submit`s, requests waited
 * up to 7 s unread while each took under 0.3 s once read. Each statement outside a transaction, and
 * each transaction, therefore runs on a turn of the event loop of its own once it holds the lock. A
 * turn also accepts at most one new connection (libuv since 1.45 accepts one per turn), so turns must be
 * short: when fifty statements ran in one turn, the fifty connections a client opened at once waited
 * up to 1.5-3 s to be accepted.
 */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const TEXT_OID = 25;
const VARCHAR_OID = 1043;
const JSON_OID = 114;
const TEXT_ARRAY_OID = 1009;

/** The binary wire format of text, varchar and json is the value's UTF-8 bytes. */
const textBytes = (value: unknown): Buffer => Buffer.from(value instanceof Date ? value.toISOString() : String(value));
const jsonBytes = (value: unknown): Buffer => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

/** A one-dimensional text[] in PostgreSQL's binary array format (see array_send); a string is taken as an array literal. */
function textArrayBytes(value: unknown): Buffer | string {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value) || value.some((x) => Array.isArray(x))) throw new TypeError('a text[] parameter must be a one-dimensional array');
  const elements = value.map((x: unknown) => (x === null || x === undefined ? null : textBytes(x)));
  const header = elements.length ? 20 : 12;
  const out = Buffer.allocUnsafe(header + elements.reduce((n, b) => n + 4 + (b?.length ?? 0), 0));
  out.writeInt32BE(elements.length ? 1 : 0, 0); // dimensions
  out.writeInt32BE(elements.includes(null) ? 1 : 0, 4); // has nulls
  out.writeInt32BE(TEXT_OID, 8); // element type
  if (elements.length) {
    out.writeInt32BE(elements.length, 12);
    out.writeInt32BE(1, 16); // lower bound
  }
  let at = header;
  for (const b of elements) {
    out.writeInt32BE(b ? b.length : -1, at);
    b?.copy(out, at + 4);
    at += 4 + (b?.length ?? 0);
  }
  return out;
}

/**
 * Text, JSON and text[] parameters go to PGlite in binary format, which its protocol layer takes as an
 * ArrayBufferView. In text format PGlite measures each string's UTF-8 length twice with a JavaScript
 * loop over its characters (about 8 ns a character, against 0.2 for Buffer.byteLength) and escapes
 * every array element: for an AuditEvent's 2.3 KB of content and index tokens, a third of the CPU
 * its insert took.
 */
const SERIALIZERS: Record<number, (value: unknown) => Buffer | string> = {
  [TEXT_OID]: textBytes,
  [VARCHAR_OID]: textBytes,
  [JSON_OID]: jsonBytes,
  [TEXT_ARRAY_OID]: textArrayBytes,
};

/** A statement parsed into the engine under `name` ('' for the unnamed statement), with the types of its parameters. */
interface ParsedStatement {
  name: string;
  paramTypes: number[];
}

const concat = (...messages: Uint8Array[]): Uint8Array => Buffer.concat(messages);

/**
 * The first NAMED_STATEMENTS distinct SQL texts are parsed once, as named prepared statements, and each run
 * is one call into the engine (bind, describe, execute, sync); later texts are parsed on each run, as
 * PGlite's own `query` does for every statement (in six calls into the engine).
 */
class PreparedStatements {
  private readonly statements = new Map<string, ParsedStatement>();

  constructor(private readonly db: PGlite) {}

  /** Runs `sql`; the caller holds PGlite's query lock. */
  async run(sql: string, params: unknown[]): Promise<SqlRows> {
    const statement = this.statements.get(sql) ?? (await this.parse(sql));
    const values = params.map((value, i) => (value === null || value === undefined ? null : this.serialize(value, statement.paramTypes[i])));
    const messages = await this.db.execProtocolStream(
      concat(protocol.serialize.bind({ statement: statement.name, values }), protocol.serialize.describe({ type: 'P' }), protocol.serialize.execute({}), protocol.serialize.sync()),
      { syncToFs: false },
    );
    const [result] = parse.parseResults(messages, this.db.parsers);
    return { rows: result.rows as Record<string, unknown>[], rowCount: result.affectedRows ?? result.rows.length };
  }

  private async parse(sql: string): Promise<ParsedStatement> {
    const name = this.statements.size < NAMED_STATEMENTS ? `s${this.statements.size + 1}` : '';
    const messages = await this.db.execProtocolStream(
      concat(protocol.serialize.parse({ name, text: sql }), protocol.serialize.describe({ type: 'S', name }), protocol.serialize.sync()),
      { syncToFs: false },
    );
    const statement = { name, paramTypes: parse.parseDescribeStatementResults(messages) };
    if (name) this.statements.set(sql, statement);
    return statement;
  }

  private serialize(value: unknown, type: number | undefined): Buffer | string {
    const serializer = type === undefined ? undefined : (SERIALIZERS[type] ?? this.db.serializers[type]);
    return serializer ? serializer(value) : String(value);
  }
}

class PgliteConnection implements SqlConnection {
  constructor(
    private readonly db: PGlite,
    private readonly statements: PreparedStatements,
    private readonly tx?: Transaction,
  ) {}

  get inTransaction(): boolean {
    return this.tx !== undefined;
  }

  async query(sql: string, params: unknown[] = []): Promise<SqlRows> {
    if (this.db.closed) throw new Error('PGlite is closed');
    if (this.tx?.closed) throw new Error('Transaction is closed');
    if (this.tx) return this.db.runExclusive(() => this.statements.run(sql, params));
    // As PGlite's own query: never between the statements of someone else's transaction.
    return this.db._runExclusiveTransaction(() =>
      this.db.runExclusive(async () => {
        await nextTurn();
        const result = await this.statements.run(sql, params);
        await this.db.syncToFs();
        return result;
      }),
    );
  }

  async transaction<T>(fn: (conn: SqlConnection) => Promise<T>): Promise<T> {
    if (this.tx) return fn(this);
    return this.db.transaction(async (tx) => {
      await nextTurn();
      return fn(new PgliteConnection(this.db, this.statements, tx));
    });
  }

  async close(): Promise<void> {
    if (!this.tx && !this.db.closed) await this.db.close();
  }
}

/** Embedded PostgreSQL (WASM) with its data in `dataDir`; `memory://` for an in-memory database. */
export async function openPglite(dataDir: string, loadDataDir?: Blob): Promise<SqlConnection> {
  if (!dataDir.startsWith('memory://')) {
    mkdirSync(dataDir, { recursive: true });
    if (!loadDataDir && !existsSync(join(dataDir, 'PG_VERSION'))) await initialiseDataDir(dataDir);
  }
  const db = await PGlite.create(dataDir, { startParams: [...PGlite.defaultStartParams, ...settingOptions({ ...PLANNER_SETTINGS, ...PGLITE_SETTINGS })], ...(loadDataDir ? { loadDataDir } : {}) });
  return wrapPglite(db);
}

/**
 * A new data folder is initialised (initdb) on a worker thread. PGlite runs initdb in WebAssembly
 * instances of its own, and their memory (about 430 MB) stayed in the server's process until V8 happened
 * to collect it, which an idle server did not do; a worker's memory goes when it exits.
 */
async function initialiseDataDir(dataDir: string): Promise<void> {
  const pglite = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const worker = new Worker(INITIALISE_DATA_DIR, { eval: true, workerData: { pglite, dataDir } });
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`PGlite could not initialise ${dataDir} (exit code ${code})`))));
  });
}

const INITIALISE_DATA_DIR = `
const { workerData } = require('node:worker_threads');
const { PGlite } = require(workerData.pglite);
PGlite.create(workerData.dataDir).then((db) => db.close());
`;

/** Settings for the embedded engine, which shares one process (and its memory) with the server. */
const PGLITE_SETTINGS = {
  // WebAssembly memory never shrinks: a pool of 32 MB rather than 128 keeps the process smaller, and the
  // pages it does not hold are one read away in the OS page cache.
  shared_buffers: '32MB',
};

export const wrapPglite = (db: PGlite): SqlConnection => new PgliteConnection(db, new PreparedStatements(db));
