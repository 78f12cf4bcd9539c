import type { Logger } from '../log.js';
import type { FhirStore, OutboxMessage } from '../storage/FhirStore.js';
import { describeError, PermanentError, RetryLater, TransientError } from './errors.js';

/**
 * Sends one outbox message. `attempt` counts from 1 (the store increments it when it leases the
 * row). Throw PermanentError to dead-letter, RetryLater to run again later without counting a
 * failure, anything else to retry with backoff. Delivery is at-least-once (a crashed worker's
 * lease expires and the row is sent again), so every handler must be idempotent on the receiving
 * side (conditional create on a business identifier, event numbers for notifications).
 */
export type OutboxHandler = (payload: unknown, attempt: number) => Promise<void>;

/** Runs inside the transaction that marks the row failed, so the visible record and the row agree. */
export type DeadLetterHandler = (message: OutboxMessage, error: string, tx: FhirStore) => Promise<void>;

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export interface OutboxWorkerOptions {
  store: FhirStore;
  handlers: Record<string, OutboxHandler>;
  pollMs: number;
  batch: number;
  /** How long a claimed row stays leased; longer than the slowest handler (all its HTTP timeouts). */
  leaseMs: number;
  maxAttempts: number;
  backoff: BackoffPolicy;
  onDeadLetter?: DeadLetterHandler;
  logger?: Logger;
  /** For tests: the jitter source. */
  random?: () => number;
}

export interface OutboxMetrics {
  /** Messages delivered (handler succeeded, row completed). */
  sent: number;
  /** Failed attempts scheduled for another try. */
  retried: number;
  /** Failed attempts of any kind (retried + dead-lettered). */
  failed: number;
  deadLettered: number;
  /** Polls that were not finished yet (RetryLater); not failures. */
  rescheduled: number;
  /** Messages being handled right now by this worker. */
  inFlight: number;
  /**
   * Rows waiting (pending or leased), as of the last poll.
   */
  queueDepth?: number;
}


/**
 * Exponential backoff with "equal jitter": half the capped exponential delay is fixed, half random,
 * so retries of many messages spread out without ever retrying immediately. A server's
 * Retry-After (429/503) wins when longer, up to an hour.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random, retryAfterMs?: number): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  const delay = exp / 2 + random() * (exp / 2);
  return Math.round(retryAfterMs !== undefined ? Math.max(delay, Math.min(retryAfterMs, 3_600_000)) : delay);
}

/**
 * The one outbox worker: notices, reports, CDex requests and subscription notifications all go
 * through it. Batches run one at a time per worker (the lease and SKIP LOCKED let several server
 * processes share the outbox); the messages of a batch are sent concurrently.
 */
export class OutboxWorker {
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  /** The batch in flight (start loop and drain() share it, so batches never overlap). */
  private current: Promise<unknown> = Promise.resolve();
  /** Rows this worker rescheduled and when they are due again (lets drain() wait for them). */
  private readonly due = new Map<string, number>();
  private readonly counters = { sent: 0, retried: 0, failed: 0, deadLettered: 0, rescheduled: 0, inFlight: 0 };
  private queueDepth: number | undefined;

  constructor(private readonly options: OutboxWorkerOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stops polling and waits for the batch in flight to finish (its rows are completed or rescheduled). */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.current;
  }

  /**
   * For tests and one-off runs: processes batches until nothing is due, waiting (up to `timeoutMs`)
   * for rows this worker rescheduled. Rows leased by a crashed worker are picked up once their lease
   * expires, which drain() does not wait for.
   */
  async drain(timeoutMs = 15_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let processed = 0;
    for (;;) {
      const n = await this.runOnce();
      processed += n;
      if (n > 0) continue;
      // A row that was due and could not be claimed belongs to someone else now.
      for (const [id, at] of this.due) if (at < Date.now() - 50) this.due.delete(id);
      const next = Math.min(...this.due.values());
      if (!Number.isFinite(next) || next > deadline) return processed;
      await sleep(Math.max(5, next - Date.now() + 5));
      if (Date.now() > deadline) return processed;
    }
  }

  metrics(): OutboxMetrics {
    return { ...this.counters, queueDepth: this.queueDepth };
  }

  /** Claims and handles one batch; returns how many messages it handled. */
  runOnce(): Promise<number> {
    const run = this.current.then(() => this.processBatch());
    this.current = run.catch(() => undefined);
    return run;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    if (!this.running) return;
    let handled = 0;
    try {
      handled = await this.runOnce();
    } catch (err) {
      // The database may be briefly unavailable; keep polling.
      this.options.logger?.warn('outbox_poll_failed', { error: describeError(err) });
    }
    if (this.running) this.schedule(handled >= this.options.batch ? 0 : this.options.pollMs);
  }

  private async processBatch(): Promise<number> {
    const { store, batch, leaseMs } = this.options;
    const messages = await store.claimOutbox(batch, leaseMs);
    for (const m of messages) this.due.delete(m.id);
    await Promise.all(messages.map((m) => this.handle(m)));
    this.queueDepth = await store.outboxDepth().catch(() => this.queueDepth);
    return messages.length;
  }

  private async handle(message: OutboxMessage): Promise<void> {
    const { store, handlers, logger } = this.options;
    this.counters.inFlight++;
    try {
      const handler = Object.hasOwn(handlers, message.kind) ? handlers[message.kind] : undefined;
      if (!handler) {
        this.counters.failed++;
        await this.deadLetter(message, `no handler for outbox kind '${message.kind.slice(0, 40)}'`);
        return;
      }
      let outcome: unknown;
      try {
        await handler(message.payload, message.attempts);
      } catch (err) {
        outcome = err;
      }
      if (outcome === undefined) {
        await store.completeOutbox(message.id);
        this.counters.sent++;
        logger?.debug('outbox_sent', { id: message.id, kind: message.kind, attempt: message.attempts });
      } else {
        await this.failed(message, outcome);
      }
    } catch (err) {
      // Marking the row failed: the lease expires and the row is claimed again (handlers are idempotent).
      logger?.error('outbox_bookkeeping_failed', { id: message.id, kind: message.kind, error: describeError(err) });
    } finally {
      this.counters.inFlight--;
    }
  }

  private async failed(message: OutboxMessage, err: unknown): Promise<void> {
    const { store, maxAttempts, backoff, random, logger } = this.options;
    const error = describeError(err);
    if (err instanceof RetryLater) {
      await store.failOutbox(message.id, error, err.at);
      this.due.set(message.id, err.at.getTime());
      this.counters.rescheduled++;
      return;
    }
    this.counters.failed++;
    if (err instanceof PermanentError || message.attempts >= maxAttempts) {
      await this.deadLetter(message, err instanceof PermanentError ? error : `${error} (gave up after ${message.attempts} attempts)`);
      return;
    }
    const delay = backoffDelay(message.attempts, backoff, random, err instanceof TransientError ? err.retryAfterMs : undefined);
    const retryAt = new Date(Date.now() + delay);
    await store.failOutbox(message.id, error, retryAt);
    this.due.set(message.id, retryAt.getTime());
    this.counters.retried++;
    logger?.info('outbox_retry', { id: message.id, kind: message.kind, attempt: message.attempts, delayMs: delay, error });
  }

  private async deadLetter(message: OutboxMessage, error: string): Promise<void> {
    const { store, onDeadLetter, logger } = this.options;
    this.counters.deadLettered++;
    logger?.warn('outbox_dead_letter', { id: message.id, kind: message.kind, attempt: message.attempts, error });
    try {
      await store.transaction(async (tx) => {
        await tx.failOutbox(message.id, error, undefined);
        await onDeadLetter?.(message, error, tx);
      });
    } catch (err) {
      // Never leave the row leased forever because the visible record could not be written.
      logger?.error('outbox_dead_letter_record_failed', { id: message.id, kind: message.kind, error: describeError(err) });
      await store.failOutbox(message.id, error, undefined);
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
