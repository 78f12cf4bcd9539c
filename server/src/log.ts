/**
 * Structured JSON logs on stdout. Callers pass event names and non-PHI fields only (ids of
 * requests, status codes, timings, error classes); request bodies and query strings are never logged.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

/**
 * Lines handed to `sink` together once per turn of the event loop: under load one system call carries a
 * burst of request lines instead of one each (a write to a pipe is synchronous on Linux: 5% of a read's CPU).
 */
export function batchedLines(sink: (text: string) => void): { write(line: string): void; flush(): void } {
  let pending: string[] = [];
  const flush = () => {
    if (!pending.length) return;
    const text = `${pending.join('\n')}\n`;
    pending = [];
    sink(text);
  };
  return {
    write(line) {
      if (pending.push(line) === 1) setImmediate(flush);
    },
    flush,
  };
}

const stdoutLines = batchedLines((text) => process.stdout.write(text));
// A process that exits (process.exit, an uncaught error) writes what the current turn logged; only a kill loses it.
process.on('exit', stdoutLines.flush);

export function createLogger(level: LogLevel, write: (line: string) => void = stdoutLines.write): Logger {
  const log = (at: Exclude<LogLevel, 'silent'>) => (event: string, fields: Record<string, unknown> = {}) => {
    if (RANK[at] < RANK[level]) return;
    write(JSON.stringify({ time: new Date().toISOString(), level: at, event, ...fields }));
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/** Error class and stack without the message, which may quote data. */
export function errorFields(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) {
    // Some libraries throw plain objects (a database error as { name, code, message }): name and code say what failed; the message may quote data.
    const fields = typeof err === 'object' && err !== null ? (err as Record<string, unknown>) : {};
    return { error: typeof fields.name === 'string' ? fields.name : typeof err, code: typeof fields.code === 'string' ? fields.code : undefined };
  }
  return { error: err.name, code: (err as { code?: unknown }).code, stack: err.stack?.split('\n').slice(1, 6).join(' | ') };
}
