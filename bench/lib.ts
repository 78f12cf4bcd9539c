/** Load generation and process measurement for `npm run bench`. */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import { readStartLine } from '../scripts/startLine.js';

export interface Figure {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  /** The server's own p99 (its access log: from reading a request to writing its answer), over all runs. */
  serverP99?: number;
}

export interface LoadOptions {
  url: string;
  headers?: Record<string, string>;
  method?: 'GET' | 'POST' | 'PUT';
  body?: string;
  /** Varies each request (path, body) from the base request. */
  setupRequest?: (req: autocannon.Request) => autocannon.Request;
  /** Statuses that count as answered correctly (default: 2xx). */
  expect?: (status: number) => boolean;
  connections: number;
  seconds: number;
  runs: number;
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Runs autocannon `runs` times and reports the median of each figure; any wrong answer aborts the benchmark. */
export async function load(o: LoadOptions): Promise<Figure> {
  const results: Figure[] = [];
  for (let i = 0; i < o.runs; i++) {
    const wrong: number[] = [];
    const r = await new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon(
        {
          url: o.url,
          connections: o.connections,
          duration: o.seconds,
          headers: o.headers,
          method: o.method ?? 'GET',
          body: o.body,
          requests: o.setupRequest ? [{ setupRequest: o.setupRequest }] : undefined,
          timeout: 60,
        },
        (err, result) => (err ? reject(err) : resolve(result)),
      );
      instance.on('response', (_client, status) => {
        if (!(o.expect ?? ((s) => s >= 200 && s < 300))(status)) wrong.push(status);
      });
    });
    if (wrong.length || r.errors > 0 || r.timeouts > 0) {
      throw new Error(`${o.method ?? 'GET'} ${o.url}: ${wrong.length} wrong answers (${[...new Set(wrong)].join(', ')}), ${r.errors} errors, ${r.timeouts} timeouts`);
    }
    // Completed requests over the run's real duration (autocannon's per-second average reads 0 when answers take over a second).
    results.push({ rps: r.requests.total / r.duration, p50: r.latency.p50, p99: r.latency.p99, requests: r.requests.total });
  }
  return { rps: median(results.map((r) => r.rps)), p50: median(results.map((r) => r.p50)), p99: median(results.map((r) => r.p99)), requests: results.reduce((a, r) => a + r.requests, 0) };
}

export interface ChildServer {
  url: string;
  pid: number;
  /** What the child logged when it started (e.g. startupMs, loaded). */
  started: Record<string, unknown>;
  /** Milliseconds from spawn until the start line. */
  spawnToReadyMs: number;
  /** Starts collecting the time the child logs for each request it answers (ours logs `"ms"`); the returned function stops and hands them over. */
  requestTimes(): () => number[];
  stop(): Promise<void>;
}

/** A TCP port free on loopback now, for a server that must keep its address across restarts. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Spawns `node script` (built JavaScript) or `node --import tsx script` (TypeScript) and waits for the
 * JSON line with `event === readyEvent`.
 */
export async function startChild(script: string, args: string[], env: Record<string, string>, readyEvent: string, nodeArgs: string[] = []): Promise<ChildServer> {
  const t0 = performance.now();
  const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, ...loader, script, ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const started = await readStartLine(child, readyEvent, script);
  const spawnToReadyMs = performance.now() - t0;
  return {
    url: String(started.url),
    pid: child.pid!,
    started,
    spawnToReadyMs,
    requestTimes: () => collectRequestTimes(child),
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const REQUEST_TIME = /"event":"request".*"ms":([0-9.]+)/;

/** Reads only while collecting, and only the number: the log is otherwise drained unread (see readStartLine). */
function collectRequestTimes(child: ChildProcess): () => number[] {
  const times: number[] = [];
  let partial = '';
  const onData = (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const ms = REQUEST_TIME.exec(line)?.[1];
      if (ms) times.push(Number(ms));
    }
  };
  child.stdout!.on('data', onData);
  return () => {
    child.stdout!.off('data', onData);
    return times;
  };
}

export const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU time (user + system) a process has used so far, in ms. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

/** CPU time of every process named `postgres` on this machine (the PostgreSQL tier), in ms. */
export function postgresCpuMs(): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'postgres') total += cpuMs(Number(entry));
    } catch {
      /* the process ended */
    }
  }
  return total;
}

/** Peak resident memory of a process (VmHWM), in MB. */
export function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}
