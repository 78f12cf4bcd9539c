import { describe, expect, it } from 'vitest';
import type { FhirStore, OutboxMessage } from '../storage/FhirStore.js';
import { PermanentError, RetryLater, TransientError } from './errors.js';
import { backoffDelay, OutboxWorker, type OutboxHandler } from './worker.js';

interface Row {
  id: string;
  kind: string;
  payload: unknown;
  attempts: number;
  status: 'pending' | 'sending' | 'sent' | 'failed';
  notBefore: number;
  error?: string;
}

/** The outbox part of a FhirStore, in memory, with the SQL store's lease semantics. */
class FakeOutbox {
  rows: Row[] = [];
  transactions = 0;
  enqueue(kind: string, payload: unknown): void {
    this.rows.push({ id: `m${this.rows.length + 1}`, kind, payload, attempts: 0, status: 'pending', notBefore: 0 });
  }
  async claimOutbox(limit: number, leaseMs: number): Promise<OutboxMessage[]> {
    const now = Date.now();
    const due = this.rows.filter((r) => (r.status === 'pending' || r.status === 'sending') && r.notBefore <= now).slice(0, limit);
    for (const r of due) {
      r.status = 'sending';
      r.attempts++;
      r.notBefore = now + leaseMs;
    }
    return due.map((r) => ({ id: r.id, kind: r.kind, payload: r.payload, attempts: r.attempts, notBefore: new Date(r.notBefore) }));
  }
  async completeOutbox(id: string): Promise<void> {
    this.row(id).status = 'sent';
  }
  async outboxDepth(): Promise<number> {
    return this.rows.filter((r) => r.status === 'pending' || r.status === 'sending').length;
  }
  async failOutbox(id: string, error: string, retryAt: Date | undefined): Promise<void> {
    const r = this.row(id);
    r.error = error;
    r.status = retryAt ? 'pending' : 'failed';
    if (retryAt) r.notBefore = retryAt.getTime();
  }
  async transaction<T>(fn: (tx: FhirStore) => Promise<T>): Promise<T> {
    this.transactions++;
    return fn(this as unknown as FhirStore);
  }
  row(id: string): Row {
    return this.rows.find((r) => r.id === id)!;
  }
  get store(): FhirStore {
    return this as unknown as FhirStore;
  }
}

function worker(outbox: FakeOutbox, handlers: Record<string, OutboxHandler>, deadLetters: { message: OutboxMessage; error: string }[] = []) {
  return new OutboxWorker({
    store: outbox.store,
    handlers,
    pollMs: 10,
    batch: 5,
    leaseMs: 1000,
    maxAttempts: 3,
    backoff: { baseMs: 5, maxMs: 20 },
    random: () => 0.5,
    onDeadLetter: async (message, error) => {
      deadLetters.push({ message, error });
    },
  });
}

describe('backoffDelay', () => {
  const policy = { baseMs: 1000, maxMs: 60_000 };
  it('grows exponentially with jitter between half and all of the step, capped at maxMs', () => {
    expect(backoffDelay(1, policy, () => 0)).toBe(500);
    expect(backoffDelay(1, policy, () => 1)).toBe(1000);
    expect(backoffDelay(3, policy, () => 0)).toBe(2000);
    expect(backoffDelay(3, policy, () => 1)).toBe(4000);
    expect(backoffDelay(30, policy, () => 1)).toBe(60_000);
    expect(backoffDelay(1000, policy, () => 0)).toBe(30_000);
  });
  it('waits at least as long as a Retry-After, up to an hour', () => {
    expect(backoffDelay(1, policy, () => 0, 90_000)).toBe(90_000);
    expect(backoffDelay(1, policy, () => 0, 10)).toBe(500);
    expect(backoffDelay(1, policy, () => 0, 86_400_000)).toBe(3_600_000);
  });
});

describe('OutboxWorker', () => {
  it('completes a message whose handler succeeds and passes the attempt number', async () => {
    const outbox = new FakeOutbox();
    outbox.enqueue('k', { n: 1 });
    const seen: [unknown, number][] = [];
    const w = worker(outbox, { k: async (payload, attempt) => void seen.push([payload, attempt]) });
    expect(await w.drain()).toBe(1);
    expect(seen).toEqual([[{ n: 1 }, 1]]);
    expect(outbox.rows[0].status).toBe('sent');
    expect(w.metrics()).toMatchObject({ sent: 1, retried: 0, failed: 0, deadLettered: 0, inFlight: 0 });
  });

  it('retries transient failures with backoff, then dead-letters after maxAttempts in one transaction', async () => {
    const outbox = new FakeOutbox();
    outbox.enqueue('k', {});
    const dead: { message: OutboxMessage; error: string }[] = [];
    const w = worker(outbox, { k: async () => Promise.reject(new TransientError('upstream: HTTP 503')) }, dead);
    await w.drain();
    expect(outbox.rows[0]).toMatchObject({ status: 'failed', attempts: 3 });
    expect(outbox.rows[0].error).toBe('upstream: HTTP 503 (gave up after 3 attempts)');
    expect(dead).toHaveLength(1);
    expect(dead[0].message.attempts).toBe(3);
    expect(outbox.transactions).toBe(1);
    expect(w.metrics()).toMatchObject({ sent: 0, retried: 2, failed: 3, deadLettered: 1 });
  });

  it('dead-letters a permanent failure at once', async () => {
    const outbox = new FakeOutbox();
    outbox.enqueue('k', {});
    const dead: { message: OutboxMessage; error: string }[] = [];
    const w = worker(outbox, { k: async () => Promise.reject(new PermanentError('create Task: HTTP 422')) }, dead);
    await w.drain();
    expect(outbox.rows[0]).toMatchObject({ status: 'failed', attempts: 1, error: 'create Task: HTTP 422' });
    expect(dead.map((d) => d.error)).toEqual(['create Task: HTTP 422']);
  });

  it('reschedules RetryLater without counting a failure, beyond maxAttempts', async () => {
    const outbox = new FakeOutbox();
    outbox.enqueue('poll', {});
    let polls = 0;
    const w = worker(outbox, {
      poll: async () => {
        if (++polls < 6) throw new RetryLater(new Date(Date.now() + 5), 'not done yet');
      },
    });
    await w.drain();
    expect(polls).toBe(6);
    expect(outbox.rows[0].status).toBe('sent');
    expect(w.metrics()).toMatchObject({ sent: 1, rescheduled: 5, failed: 0, deadLettered: 0 });
  });

  it('dead-letters a kind nobody handles', async () => {
    const outbox = new FakeOutbox();
    outbox.enqueue('unknown', {});
    const dead: { message: OutboxMessage; error: string }[] = [];
    await worker(outbox, {}, dead).drain();
    expect(outbox.rows[0].status).toBe('failed');
    expect(dead[0].error).toContain("no handler for outbox kind 'unknown'");
  });

  it('still marks the row failed when recording the dead letter fails', async () => {
    const outbox = new FakeOutbox();
    outbox.enqueue('k', {});
    const w = new OutboxWorker({
      store: outbox.store,
      handlers: { k: async () => Promise.reject(new PermanentError('no')) },
      pollMs: 10,
      batch: 5,
      leaseMs: 1000,
      maxAttempts: 3,
      backoff: { baseMs: 5, maxMs: 20 },
      onDeadLetter: async () => Promise.reject(new Error('validator refused the Task')),
    });
    await w.drain();
    expect(outbox.rows[0].status).toBe('failed');
  });

  it('stop() lets the batch in flight finish', async () => {
    const outbox = new FakeOutbox();
    outbox.enqueue('slow', {});
    let release: () => void = () => undefined;
    let entered: () => void = () => undefined;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const w = worker(outbox, {
      slow: () =>
        new Promise<void>((done) => {
          release = done;
          entered();
        }),
    });
    w.start();
    await inHandler;
    const stopping = w.stop();
    expect(outbox.rows[0].status).toBe('sending');
    release();
    await stopping;
    expect(outbox.rows[0].status).toBe('sent');
  });
});
