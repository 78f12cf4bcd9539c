import { type ChildProcess, spawn } from 'node:child_process';
import { issueAccessToken } from '../../server/src/auth/accessTokens.js';
import { loadSigningKey } from '../../server/src/auth/signingKeys.js';
import type { Grant } from '../../server/src/auth/accessTokens.js';
import { SERVER_BUNDLE } from '../../scripts/build-server.js';
import { readStartLine } from '../../scripts/startLine.js';

/** The server as `npm start` runs it (the bundle vitest's global setup builds) in a child process, so tests can SIGKILL or SIGTERM the real thing. */
export interface ServerProcess {
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  /** A token signed with the server's own key (DATA_DIR/keys). */
  token(grant?: Omit<Grant, 'clientId'>): string;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  // node itself (not npx) so that signals reach the server process.
  const child = spawn(process.execPath, ['--enable-source-maps', SERVER_BUNDLE], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = String((await readStartLine(child, 'server_started', 'server')).url);
  const dataDir = env.DATA_DIR;
  return {
    url,
    child,
    exited,
    token: (grant: Omit<Grant, 'clientId'> = { scope: 'user/*.cruds', roles: ['plan-admin'] }) =>
      issueAccessToken({ issuer: url, fhirBase: `${url}/fhir`, key: loadSigningKey(dataDir), accessTokenSeconds: 600 }, { clientId: 'test', ...grant }).token,
    async kill(signal) {
      child.kill(signal);
      return exited;
    },
  };
}
