import type { Resource } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import type { FhirStore } from '../storage/FhirStore.js';
import { BufferedAuditSink } from './audit.js';
import { serviceUnavailable } from './outcomes.js';

/** A store whose batch writes finish when the test says so. */
function slowStore() {
  const pending: { batch: Resource[]; finish: (err?: unknown) => void }[] = [];
  const stored: Resource[] = [];
  const store = {
    createMany: (batch: Resource[]) =>
      new Promise<Resource[]>((resolve, reject) => {
        pending.push({ batch, finish: (err) => (err ? reject(err) : (stored.push(...batch), resolve(batch))) });
      }),
  } as unknown as FhirStore;
  /** Finishes the writes started so far (all of them, or with `err`). */
  const finishAll = async (err?: unknown) => {
    for (const w of pending.splice(0)) w.finish(err);
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { store, pending, stored, finishAll };
}

const read = { interaction: 'read' as const, resourceType: 'Task', id: 't1', status: 200 };
const options = { enabled: true, intervalMs: 10_000, maxBatch: 10, maxWriters: 2, maxBacklog: 40 };

describe('BufferedAuditSink', () => {
  it('writes full batches at once, at most maxWriters at a time, and the rest when writers free up', async () => {
    const { store, pending, stored, finishAll } = slowStore();
    const sink = new BufferedAuditSink(store, options);
    for (let i = 0; i < 35; i++) sink.record(read);
    expect(pending.map((w) => w.batch.length)).toEqual([10, 10]);
    await finishAll();
    expect(pending.map((w) => w.batch.length)).toEqual([10]); // a full batch; the last 5 wait for the timer or a flush
    const flushed = sink.flush();
    await finishAll();
    await finishAll();
    await flushed;
    expect(stored).toHaveLength(35);
  });

  it('makes requests wait while more than maxBacklog events are unstored, and lets them go once the database catches up', async () => {
    const { store, finishAll } = slowStore();
    const sink = new BufferedAuditSink(store, options);
    const waits = Array.from({ length: 45 }, () => sink.record(read));
    expect(waits.slice(0, 40).every((w) => w === undefined)).toBe(true);
    expect(waits.slice(40).every((w) => w instanceof Promise)).toBe(true);
    let released = 0;
    for (const w of waits.slice(40)) void w!.then(() => released++);
    await finishAll(); // 20 stored, 25 unstored: under the limit
    expect(released).toBe(5);
  });

  it('keeps and retries what an unavailable database refused, and nobody waits for it meanwhile', async () => {
    const { store, stored, finishAll } = slowStore();
    const sink = new BufferedAuditSink(store, { ...options, maxBacklog: 5 });
    for (let i = 0; i < 10; i++) sink.record(read);
    await finishAll(serviceUnavailable('database away', 1));
    expect(sink.record(read)).toBeUndefined(); // the outage is not the client's to wait for
    expect(stored).toHaveLength(0);
    expect(sink.failures).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // the retry
    await finishAll();
    await finishAll();
    expect(stored).toHaveLength(11);
  });
});
