/**
 * The ceilings for `npm run bench`: the same JSON (file argv[3]) from a bare Express 5 app
 * (argv[2] = express) or a bare node:http server (argv[2] = http), in a process of its own.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';

const [mode, file] = process.argv.slice(2);
const body = readFileSync(file, 'utf8');
let server: Server;
if (mode === 'express') {
  const app = express();
  app.get('/r', (_req, res) => res.type('application/fhir+json').send(body));
  server = app.listen(0, '127.0.0.1', started);
} else {
  server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/fhir+json');
    res.end(body);
  }).listen(0, '127.0.0.1', started);
}

function started(): void {
  process.stdout.write(`${JSON.stringify({ event: 'bare_started', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`);
}
