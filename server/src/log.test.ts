import { describe, expect, it } from 'vitest';
import { batchedLines, createLogger, errorFields } from './log.js';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('log lines', () => {
  it('go out together, in order, once per turn of the event loop', async () => {
    const writes: string[] = [];
    const lines = batchedLines((text) => writes.push(text));
    lines.write('a');
    lines.write('b');
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toEqual(['a\nb\n']);
    lines.write('c');
    await nextTurn();
    await nextTurn();
    expect(writes).toEqual(['a\nb\n', 'c\n']);
  });

  it('are written at once by flush (as on exit), and nothing is written twice', async () => {
    const writes: string[] = [];
    const lines = batchedLines((text) => writes.push(text));
    lines.write('x');
    lines.flush();
    expect(writes).toEqual(['x\n']);
    await nextTurn();
    lines.flush();
    expect(writes).toEqual(['x\n']);
  });

  it('carry the event and its fields as one JSON object per line, below the level dropped', () => {
    const lines: string[] = [];
    const logger = createLogger('info', (line) => lines.push(line));
    logger.debug('hidden');
    logger.info('request', { status: 200 });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ level: 'info', event: 'request', status: 200 });
  });

  it('name what failed when a library throws a plain object, never its message (it may quote data)', () => {
    expect(errorFields({ name: 'DatabaseError', code: '54001', message: "value 'Jane Doe' too long" })).toEqual({ error: 'DatabaseError', code: '54001' });
    expect(errorFields('text')).toEqual({ error: 'string', code: undefined });
    expect(JSON.stringify(errorFields(new TypeError('x')))).not.toContain('"x"');
  });
});
