import { describe, expect, it } from 'vitest';
import { GroupCommit } from './groupCommit.js';

describe('GroupCommit', () => {
  it('writes the calls of one turn together, and the calls that arrive during a write in the next batch', async () => {
    const batches: number[][] = [];
    let release: () => void = () => undefined;
    const group = new GroupCommit<number, string>(async (inputs) => {
      batches.push(inputs);
      if (batches.length === 1) await new Promise<void>((resolve) => (release = resolve));
      return inputs.map((n) => `#${n}`);
    });
    const first = [1, 2, 3].map((n) => group.submit(n));
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const second = [4, 5].map((n) => group.submit(n));
    release();
    expect(await Promise.all([...first, ...second])).toEqual(['#1', '#2', '#3', '#4', '#5']);
    expect(batches).toEqual([[1, 2, 3], [4, 5]]);
  });

  it('writes a failed batch again one call at a time: each caller gets its own result or error', async () => {
    const group = new GroupCommit<number, number>(async (inputs) => {
      if (inputs.includes(13)) throw new Error(`refused ${inputs.join(',')}`);
      return inputs.map((n) => n * 2);
    });
    const results = await Promise.allSettled([12, 13, 14].map((n) => group.submit(n)));
    expect(results).toEqual([
      { status: 'fulfilled', value: 24 },
      { status: 'rejected', reason: new Error('refused 13') },
      { status: 'fulfilled', value: 28 },
    ]);
  });

  it('splits what is waiting into batches of at most maxBatch', async () => {
    const sizes: number[] = [];
    const group = new GroupCommit<number, number>(async (inputs) => (sizes.push(inputs.length), inputs), 4);
    await Promise.all(Array.from({ length: 10 }, (_, i) => group.submit(i)));
    expect(sizes).toEqual([4, 4, 2]);
  });
});
