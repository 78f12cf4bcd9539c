import { ZodError } from 'zod';

/**
 * How an outbound attempt failed, as the outbox worker needs to know it. Messages are built by us
 * from status codes and error classes only: they end up in the outbox row, in logs and in the
 * delivery-failed Task, so they never quote a response body (which may echo PHI).
 */

/** Will never succeed as sent (4xx other than 408/429, bad configuration, malformed payload): dead letter. */
export class PermanentError extends Error {
  override readonly name = 'PermanentError';
}

/** May succeed later (5xx, 408, 429, network, timeout): retry with backoff, honouring Retry-After. */
export class TransientError extends Error {
  override readonly name = 'TransientError';
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Not a failure: the message is not finished yet (a poll) and runs again at `at`. */
export class RetryLater extends Error {
  override readonly name = 'RetryLater';
  constructor(
    readonly at: Date,
    reason: string,
  ) {
    super(reason);
  }
}

/** The error code of a connection refused because its host resolved to a non-public address (http.ts publicOnlyLookup). */
export const PRIVATE_ADDRESS = 'EPRIVATEADDRESS';

interface HttpErrorShape {
  response?: { status?: unknown; data?: unknown };
  config?: { headers?: unknown };
}

/** The HTTP status of a failed fhir-kit-client call, if the server answered at all. */
export function httpStatusOf(err: unknown): number | undefined {
  const status = (err as HttpErrorShape | undefined)?.response?.status;
  return typeof status === 'number' ? status : undefined;
}

/**
 * fhir-kit-client throws for a 2xx whose body is not JSON (a webhook answering "OK"); that call
 * succeeded.
 */
export function isSuccessfulNonJson(err: unknown): boolean {
  const status = httpStatusOf(err);
  return status !== undefined && status >= 200 && status < 300;
}

/** Maps any error of an outbound HTTP call to PermanentError or TransientError (idempotent). */
export function classifyHttpError(err: unknown, what: string): PermanentError | TransientError {
  if (err instanceof PermanentError || err instanceof TransientError) return err;
  if (err instanceof ZodError) return new TransientError(`${what}: unexpected response shape`);
  const status = httpStatusOf(err);
  if (status !== undefined) {
    const detail = `${what}: HTTP ${status}${issueCodes((err as HttpErrorShape).response?.data)}`;
    if (status === 408 || status === 429 || status >= 500) return new TransientError(detail, retryAfterMs(err));
    return new PermanentError(detail);
  }
  const e = err as { name?: unknown; cause?: { code?: unknown; message?: unknown } } | undefined;
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return new TransientError(`${what}: timed out`);
  // Redirects are refused (a redirect could carry a token elsewhere): the endpoint will answer the same way next time.
  if (e?.cause?.message === 'unexpected redirect') return new PermanentError(`${what}: the endpoint answered with a redirect, which is not followed`);
  if (e?.cause?.code === PRIVATE_ADDRESS) return new PermanentError(`${what}: the host resolves to a private-network address`);
  const code = typeof e?.cause?.code === 'string' ? ` (${e.cause.code})` : '';
  return new TransientError(`${what}: network error${code}`);
}

/** ` [processing, invalid]`: the OperationOutcome issue codes, never the diagnostics. */
function issueCodes(data: unknown): string {
  const issues = (data as { resourceType?: unknown; issue?: { code?: unknown }[] } | undefined)?.issue;
  if (!Array.isArray(issues)) return '';
  const codes = issues.map((i) => i?.code).filter((c): c is string => typeof c === 'string' && /^[a-z-]{1,40}$/.test(c));
  return codes.length ? ` [${[...new Set(codes)].slice(0, 5).join(', ')}]` : '';
}

function retryAfterMs(err: unknown): number | undefined {
  const headers = (err as HttpErrorShape).config?.headers;
  const value = headers instanceof Headers ? headers.get('retry-after') : undefined;
  return parseRetryAfter(value ?? undefined);
}

/** `Retry-After` as seconds or an HTTP date (RFC 9110 10.2.3). */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d{1,7}$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** One line for the outbox row and logs: our own error classes carry PHI-free messages. */
export function describeError(err: unknown): string {
  if (err instanceof PermanentError || err instanceof TransientError || err instanceof RetryLater) return err.message;
  if (err instanceof ZodError) return `invalid payload: ${err.issues.map((i) => i.path.join('.') || '(root)').slice(0, 5).join(', ')}`;
  if (err instanceof Error) {
    const status = (err as Error & { status?: unknown }).status;
    return `${err.name}${typeof status === 'number' ? ` ${status}` : ''}`;
  }
  return typeof err;
}
