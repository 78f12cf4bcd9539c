import type { DocumentReference, Task } from 'fhir/r4.js';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { localCopy, remoteUrl } from './cdex.js';
import { forReceiver } from './deliveries.js';
import { classifyHttpError, describeError, parseRetryAfter, PermanentError, TransientError } from './errors.js';
import { checkOutboundUrl, identifierQuery, isPrivateHost } from './http.js';

const httpError = (status: number, data: unknown = {}, headers = new Headers()) =>
  Object.assign(new Error(`HTTP ${status}: POST https://x/fhir/Task`), { response: { status, data }, config: { headers } });

describe('classifyHttpError', () => {
  it('retries 5xx, 408, 429 and network errors; everything else 4xx is permanent', () => {
    for (const s of [500, 502, 503, 408, 429]) expect(classifyHttpError(httpError(s), 'x')).toBeInstanceOf(TransientError);
    for (const s of [400, 401, 403, 404, 409, 412, 422]) expect(classifyHttpError(httpError(s), 'x')).toBeInstanceOf(PermanentError);
    expect(classifyHttpError(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }), 'x').message).toBe('x: network error (ECONNREFUSED)');
    expect(classifyHttpError(new DOMException('timed out', 'TimeoutError'), 'x').message).toBe('x: timed out');
  });

  it('a redirect, which fetch refuses (redirect: error), is permanent: retrying gets the same redirect', async () => {
    const { createServer } = await import('node:http');
    const server = createServer((_req, res) => res.writeHead(302, { location: 'https://elsewhere.example/' }).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const refused = await fetch(`http://127.0.0.1:${port}/`, { redirect: 'error' }).catch((err: unknown) => err);
    server.close();
    const classified = classifyHttpError(refused, 'rest-hook');
    expect(classified).toBeInstanceOf(PermanentError);
    expect(classified.message).toBe('rest-hook: the endpoint answered with a redirect, which is not followed');
  });

  it('keeps issue codes and drops diagnostics, which may echo PHI', () => {
    const err = classifyHttpError(httpError(422, { resourceType: 'OperationOutcome', issue: [{ code: 'processing', diagnostics: 'Patient Jane Doe born 1980' }] }), 'create Task');
    expect(err.message).toBe('create Task: HTTP 422 [processing]');
  });

  it('honours Retry-After in seconds or as a date', () => {
    const err = classifyHttpError(httpError(429, {}, new Headers({ 'retry-after': '30' })), 'x') as TransientError;
    expect(err.retryAfterMs).toBe(30_000);
    expect(parseRetryAfter(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(50_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });

  it('describes unknown errors by class only', () => {
    expect(describeError(new Error('Patient Jane Doe'))).toBe('Error');
    const parsed = z.object({ a: z.string() }).safeParse({ a: 1 });
    expect(describeError(parsed.error)).toBe('invalid payload: a');
  });
});

describe('outbound URL policy', () => {
  const strict = { allowHttp: false, allowPrivateNetwork: false };
  it('allows https to public hosts only', () => {
    expect(checkOutboundUrl('https://ehr.example.org/fhir', strict, 'x').host).toBe('ehr.example.org');
    for (const url of ['http://ehr.example.org/fhir', 'https://127.0.0.1/fhir', 'https://localhost/fhir', 'https://[::1]/fhir', 'https://192.168.1.4/', 'https://169.254.169.254/latest', 'https://u:p@ehr.example.org/', 'ftp://x', 'nonsense']) {
      expect(() => checkOutboundUrl(url, strict, 'x')).toThrow(PermanentError);
    }
  });
  it('lets tests reach loopback over http when private networks are allowed', () => {
    expect(() => checkOutboundUrl('http://127.0.0.1:8080/fhir', { allowHttp: false, allowPrivateNetwork: true }, 'x')).not.toThrow();
    expect(() => checkOutboundUrl('http://ehr.example.org/fhir', { allowHttp: false, allowPrivateNetwork: true }, 'x')).toThrow(/https/);
  });
  it('knows private address ranges', () => {
    expect(['10.1.2.3', '172.16.0.1', '172.31.255.255', '100.64.0.1', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1', 'db.internal'].every(isPrivateHost)).toBe(true);
    expect(['172.32.0.1', '8.8.8.8', 'ehr.example.org', '2001:db8::1'].some(isPrivateHost)).toBe(false);
  });
});

describe('idempotent delivery helpers', () => {
  it('escapes the identifier for If-None-Exist', () => {
    expect(decodeURIComponent(identifierQuery({ system: 'urn:x', value: 'a|b,c' }))).toBe('identifier=urn:x|a\\|b\\,c');
  });
  it('sends the receiver a copy without our id, carrying the business identifier', () => {
    const task: Task = { resourceType: 'Task', id: 'ours', meta: { versionId: '3', profile: ['p'] }, status: 'ready', intent: 'order' };
    const copy = forReceiver(task, { system: 's', value: 'v' });
    expect(copy).toEqual({ resourceType: 'Task', meta: { profile: ['p'] }, status: 'ready', intent: 'order', identifier: [{ system: 's', value: 'v' }] });
  });
});

describe('CDex copies', () => {
  const endpoint = 'https://ehr.example.org/fhir';
  it('only follows references under the provider base', () => {
    expect(remoteUrl(endpoint, 'DocumentReference/1')).toBe(`${endpoint}/DocumentReference/1`);
    expect(remoteUrl(endpoint, `${endpoint}/Binary/2`)).toBe(`${endpoint}/Binary/2`);
    expect(remoteUrl(endpoint, 'https://elsewhere.example.org/fhir/Binary/2')).toBeUndefined();
    expect(remoteUrl(endpoint, '#contained')).toBeUndefined();
  });
  it("rewrites the provider's references so they never point at our records", () => {
    const doc: DocumentReference = { resourceType: 'DocumentReference', id: 'r1', meta: { versionId: '4' }, status: 'current', subject: { reference: 'Patient/9' }, author: [{ reference: 'Practitioner/5' }], content: [] };
    const copy = localCopy(
      doc,
      `${endpoint}/DocumentReference/r1`,
      endpoint,
      'Patient/ours',
      'ServiceRequest/case',
    ) as { id?: string; meta?: unknown; subject?: unknown; author?: unknown; context?: unknown };
    expect(copy.id).toBeUndefined();
    expect(copy.meta).toEqual({ source: `${endpoint}/DocumentReference/r1` });
    expect(copy.subject).toEqual({ reference: 'Patient/ours' });
    expect(copy.author).toEqual([{ reference: `${endpoint}/Practitioner/5` }]);
    expect(copy.context).toEqual({ related: [{ reference: 'ServiceRequest/case' }] });
    expect(localCopy({ resourceType: 'StructureDefinition' } as never, 's', endpoint, undefined, 'ServiceRequest/case')).toBeUndefined();
  });
});
