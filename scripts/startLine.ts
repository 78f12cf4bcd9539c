import type { ChildProcess } from 'node:child_process';

/**
 * The first JSON line on `child`'s stdout whose `event` is `event` (the bench and the process tests
 * wait for a server this way). The lines after it are drained unread: kept, they would grow with every
 * request the child logs, and re-reading them once cost the bench's load generator most of its CPU.
 */
export async function readStartLine(child: ChildProcess, event: string, name: string): Promise<Record<string, unknown>> {
  const stdout = child.stdout!;
  let partial = '';
  let onData: (chunk: Buffer) => void = () => undefined;
  try {
    return await new Promise<Record<string, unknown>>((resolve, reject) => {
      onData = (chunk) => {
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          if (!line.startsWith('{')) continue;
          try {
            const logged = JSON.parse(line) as Record<string, unknown>;
            if (logged.event === event) resolve(logged);
          } catch {
            /* not one of the child's log lines */
          }
        }
      };
      stdout.on('data', onData);
      child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it started`)));
    });
  } finally {
    stdout.off('data', onData);
    stdout.resume();
  }
}
