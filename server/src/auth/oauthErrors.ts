import type { Response } from 'express';

/** RFC 6750 §3.1: errors about a Bearer token the caller authorized itself with. */
const BEARER_ERRORS = new Set(['invalid_token', 'insufficient_scope']);

/**
 * An OAuth 2.0 error (RFC 6749 4.1.2.1, 5.2) that renders itself: a redirect carrying `error`,
 * `error_description` and `state` once the redirect URI is known to be the client's, JSON otherwise.
 */
export class OAuthError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status = 400,
    readonly redirect?: { uri: string; state?: string },
  ) {
    super(description);
    this.name = 'OAuthError';
  }

  withRedirect(uri: string, state?: string): OAuthError {
    return new OAuthError(this.error, this.description, this.status, { uri, state });
  }

  render(res: Response): void {
    res.setHeader('Cache-Control', 'no-store');
    if (this.redirect) {
      const url = new URL(this.redirect.uri);
      url.searchParams.set('error', this.error);
      url.searchParams.set('error_description', this.description);
      if (this.redirect.state) url.searchParams.set('state', this.redirect.state);
      res.redirect(302, url.toString());
      return;
    }
    const challenge = BEARER_ERRORS.has(this.error) ? `Bearer error="${this.error}"` : this.status === 401 ? 'Basic realm="token"' : undefined;
    if (challenge) res.setHeader('WWW-Authenticate', challenge);
    res.status(this.status).json({ error: this.error, error_description: this.description });
  }
}

export const invalidRequest = (d: string) => new OAuthError('invalid_request', d);
export const invalidClient = (d: string) => new OAuthError('invalid_client', d, 401);
export const invalidGrant = (d: string) => new OAuthError('invalid_grant', d);
export const invalidScope = (d: string) => new OAuthError('invalid_scope', d);
export const unauthorizedClient = (d: string) => new OAuthError('unauthorized_client', d);
export const accessDenied = (d: string) => new OAuthError('access_denied', d, 403);
export const invalidBearerToken = (d: string) => new OAuthError('invalid_token', d, 401);
export const insufficientScope = (d: string) => new OAuthError('insufficient_scope', d, 403);
