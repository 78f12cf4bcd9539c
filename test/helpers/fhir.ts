import { Client } from 'fhir-kit-client';
import type { Bundle, Resource } from 'fhir/r4.js';

export interface HttpError {
  status: number;
  data: unknown;
}

/** The status and OperationOutcome of a failed fhir-kit-client call. */
export async function failure(promise: Promise<unknown>): Promise<HttpError> {
  try {
    await promise;
  } catch (err) {
    const response = (err as { response?: { status: number; data: unknown } }).response;
    if (!response) throw err;
    const data = typeof response.data === 'string' ? safeParse(response.data) : response.data;
    return { status: response.status, data };
  }
  throw new Error('expected the call to fail');
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function headersOf(resource: unknown): Headers {
  return Client.httpFor(resource as never).response?.headers ?? new Headers();
}

export const asResource = <T extends Resource>(value: unknown): T => value as T;

/** A raw HTTP call (for headers and bodies fhir-kit-client does not let us shape). */
export async function raw(url: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number; headers: Headers; body: any }> {
  const headers = new Headers(init.headers);
  let body = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    if (!headers.has('content-type')) headers.set('content-type', 'application/fhir+json');
  }
  const res = await fetch(url, { ...init, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** The id of a resource created by a raw POST to the FHIR base (no token: a server with auth off). */
export const createdId = async (fhirBase: string, resource: Resource): Promise<string> =>
  (await raw(`${fhirBase}/${resource.resourceType}`, { method: 'POST', json: resource })).body.id;

/** The ids a search answers (200 expected), sorted. */
export async function foundIds(fhirBase: string, query: string): Promise<string[]> {
  const res = await raw(`${fhirBase}/${query}`);
  if (res.status !== 200) throw new Error(`${query} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return ((res.body as Bundle).entry ?? []).map((e) => e.resource!.id!).sort();
}
