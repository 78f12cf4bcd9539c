import { describe, expect, it } from 'vitest';
import { jwksUriProblem, redirectUriProblem } from './clientUrls.js';

describe('redirect and launch URIs a client may register (RFC 8252 §7.3)', () => {
  it.each(['https://app.example.org/cb', 'https://app.example.org:8443/cb?x=1', 'http://127.0.0.1:4711/cb', 'http://127.8.9.10/cb', 'http://[::1]:4711/cb', 'http://localhost:3000/cb'])('accepts %s', (uri) => {
    expect(redirectUriProblem(uri)).toBeUndefined();
  });

  it.each([
    'javascript:alert(document.domain)//',
    'data:text/html,<script>alert(1)</script>',
    'http://evil.example/cb',
    'http://10.0.0.1/cb',
    'http://127.0.0.1.evil.example/cb',
    'file:///etc/passwd',
    'ftp://app.example.org/cb',
    'com.example.app:/cb',
    'https://user:pw@app.example.org/cb',
    'https://app.example.org/cb#frag',
    'not a url',
  ])('refuses %s', (uri) => {
    expect(redirectUriProblem(uri)).toBeTruthy();
  });
});

describe('jwks_uri: the outbound URL check', () => {
  it('accepts https to a public host', () => {
    expect(jwksUriProblem('https://keys.example.org/jwks.json')).toBeUndefined();
  });

  it.each(['http://keys.example.org/jwks.json', 'http://127.0.0.1:1/x', 'https://127.0.0.1/x', 'https://169.254.169.254/latest/meta-data/', 'https://10.1.2.3/jwks', 'https://[::1]/jwks', 'https://localhost/jwks', 'https://u:p@keys.example.org/jwks'])('refuses %s', (uri) => {
    expect(jwksUriProblem(uri)).toBeTruthy();
  });
});
