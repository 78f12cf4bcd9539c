import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { classifyHttpError, PermanentError } from './errors.js';
import { checkOutboundUrl, isPrivateAddress, isPrivateHost, outboundInit, publicOnlyLookup } from './http.js';

const strict = { allowHttp: false, allowPrivateNetwork: false };

describe('private-network filter (finding F8b)', () => {
  it('refuses IPv6 forms of private IPv4 addresses, as WHATWG URL writes them', () => {
    for (const url of [
      'https://[::ffff:127.0.0.1]:18556/hook', // host [::ffff:7f00:1]
      'https://[::ffff:169.254.169.254]/latest/meta-data/',
      'https://[::7f00:1]/', // IPv4-compatible
      'https://[::127.0.0.1]/',
      'https://[64:ff9b::7f00:1]/', // NAT64
      'https://[64:ff9b::169.254.169.254]/',
      'https://[2002:7f00:1::]/', // 6to4
      'https://[::ffff:10.0.0.1]/',
    ]) {
      expect(() => checkOutboundUrl(url, strict, 'x'), url).toThrow(PermanentError);
    }
  });

  it('covers loopback, private, link-local, CGNAT, unique-local, multicast and unspecified in both families', () => {
    const blocked = ['127.0.0.1', '10.0.0.1', '172.16.0.1', '192.168.0.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255'];
    const blocked6 = ['::1', '::', 'fc00::1', 'fd12:3456::1', 'fe80::1', 'ff02::1', '::ffff:c0a8:1'];
    for (const a of [...blocked, ...blocked6]) expect(isPrivateAddress(a), a).toBe(true);
    for (const h of ['localhost', 'localhost.', 'api.localhost', 'db.internal', 'printer.local', '']) expect(isPrivateHost(h), h).toBe(true);
    // Public addresses stay allowed, also when written in an IPv6 form that embeds them.
    for (const a of ['8.8.8.8', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1']) expect(isPrivateAddress(a), a).toBe(false);
    expect(isPrivateAddress('not-an-address')).toBe(true);
  });

  it('refuses, as the connection is made, a name that resolves to a private address', async () => {
    const refused = await new Promise<NodeJS.ErrnoException | null>((resolve) => publicOnlyLookup('localhost', {}, (err) => resolve(err)));
    expect(refused?.code).toBe('EPRIVATEADDRESS');
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://localhost:${(server.address() as AddressInfo).port}/hook`;
    try {
      // What every outbound call passes to fetch: the URL check alone would not see what a name resolves to.
      const failure = await fetch(url, outboundInit(strict)).then(
        () => undefined,
        (err: Error & { cause?: { code?: string } }) => err.cause?.code,
      );
      expect(failure).toBe('EPRIVATEADDRESS');
      expect(hits).toBe(0);
      const classified = await fetch(url, outboundInit(strict)).catch((err: unknown) => classifyHttpError(err, 'rest-hook'));
      expect(classified).toEqual(new PermanentError('rest-hook: the host resolves to a private-network address'));
      // Allowed private networks (tests, a provider on the same network) connect as before.
      expect((await fetch(url, outboundInit({ allowPrivateNetwork: true }))).status).toBe(200);
      expect(hits).toBe(1);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
