import type { OperationOutcome, OperationOutcomeIssue } from 'fhir/r4.js';

/**
 * One error vocabulary for the whole server: every failure is a FhirError carrying an
 * OperationOutcome and the HTTP status it maps to. Handlers throw; the HTTP layer renders.
 */
export type IssueCode = OperationOutcomeIssue['code'];

export class FhirError extends Error {
  constructor(
    readonly status: number,
    readonly outcome: OperationOutcome,
    readonly headers: Record<string, string> = {},
    /** A refused access answered as a missing id (`concealedRefusal`): the audit log records the refusal. */
    readonly concealsRefusal = false,
  ) {
    super(outcome.issue[0]?.diagnostics ?? `HTTP ${status}`);
    this.name = 'FhirError';
  }
}

export function outcome(
  severity: OperationOutcomeIssue['severity'],
  code: IssueCode,
  diagnostics: string,
  expression?: string[],
): OperationOutcome {
  const issue: OperationOutcomeIssue = { severity, code, diagnostics };
  if (expression?.length) issue.expression = expression;
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

export function issuesOutcome(issues: OperationOutcomeIssue[]): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: issues };
}

export const allOk = (diagnostics = 'All OK'): OperationOutcome => outcome('information', 'informational', diagnostics);

export const badRequest = (diagnostics: string, expression?: string): FhirError =>
  new FhirError(400, outcome('error', 'invalid', diagnostics, expression ? [expression] : undefined));
/** A request within the rules that asks more work than the server does for one request. */
export const tooCostly = (diagnostics: string, expression?: string): FhirError =>
  new FhirError(400, outcome('error', 'too-costly', diagnostics, expression ? [expression] : undefined));
export const unauthorized = (diagnostics: string, wwwAuthenticate: string): FhirError =>
  new FhirError(401, outcome('error', 'login', diagnostics), { 'WWW-Authenticate': wwwAuthenticate });
export const forbidden = (diagnostics: string): FhirError => new FhirError(403, outcome('error', 'forbidden', diagnostics));
/** RFC 6750 §3.1: a token whose scopes do not reach the resource; `scope` names one that would. */
export const insufficientScope = (diagnostics: string, scope: string): FhirError =>
  new FhirError(403, outcome('error', 'forbidden', diagnostics), { 'WWW-Authenticate': `Bearer error="insufficient_scope", scope="${scope}"` });
export const notFound = (diagnostics: string): FhirError => new FhirError(404, outcome('error', 'not-found', diagnostics));
export const gone = (diagnostics: string): FhirError => new FhirError(410, outcome('error', 'deleted', diagnostics));

/**
 * A refused access to a resource answered as if it did not exist (404, the body a missing id gets), so that a
 * 403 does not tell the caller which ids exist; the audit log keeps the refusal.
 */
export const concealedRefusal = (what: string): FhirError => new FhirError(404, outcome('error', 'not-found', `${what} not found`), {}, true);
export const methodNotAllowed = (diagnostics: string): FhirError =>
  new FhirError(405, outcome('error', 'not-supported', diagnostics));
export const notAcceptable = (diagnostics: string): FhirError => new FhirError(406, outcome('error', 'not-supported', diagnostics));
export const conflict = (diagnostics: string, code: IssueCode = 'conflict'): FhirError =>
  new FhirError(409, outcome('error', code, diagnostics));
export const preconditionFailed = (diagnostics: string): FhirError =>
  new FhirError(412, outcome('error', 'conflict', diagnostics));
export const payloadTooLarge = (diagnostics: string): FhirError => new FhirError(413, outcome('error', 'too-costly', diagnostics));
export const unsupportedMediaType = (diagnostics: string): FhirError =>
  new FhirError(415, outcome('error', 'not-supported', diagnostics));
export const unprocessable = (diagnostics: string, expression?: string[]): FhirError =>
  new FhirError(422, outcome('error', 'processing', diagnostics, expression));
export const unprocessableIssues = (issues: OperationOutcomeIssue[]): FhirError => new FhirError(422, issuesOutcome(issues));
export const tooManyRequests = (diagnostics: string, retryAfterSeconds: number): FhirError =>
  new FhirError(429, outcome('error', 'throttled', diagnostics), { 'Retry-After': String(retryAfterSeconds) });
export const lockConflict = (diagnostics: string): FhirError => new FhirError(409, outcome('error', 'lock-error', diagnostics));
export const serviceUnavailable = (diagnostics: string, retryAfterSeconds = 5): FhirError =>
  new FhirError(503, outcome('error', 'transient', diagnostics), { 'Retry-After': String(retryAfterSeconds) });

/** Any thrown value becomes a FhirError; unknown errors are 500 `exception` without leaking details. */
export function normalizeError(err: unknown): FhirError {
  if (err instanceof FhirError) return err;
  return new FhirError(500, outcome('fatal', 'exception', 'Internal server error'));
}
