import { isIP } from 'node:net';

import { generate } from 'selfsigned';

export interface Certificate {
  key: string;
  cert: string;
}

const cache = new Map<string, Certificate>();

/**
 * A self-signed certificate for localhost, 127.0.0.1 and ::1 (plus `host` when it is something
 * else). The SDK's bearer-token policy refuses plain http, so the emulator must speak https; clients
 * trust this certificate as their CA (`tlsOptions.ca` or `NODE_EXTRA_CA_CERTS`).
 *
 * Cached per host for the life of the process: generating a 2048-bit key costs a few hundred
 * milliseconds and a test run starts many emulators.
 */
export function certificateFor(host: string): Certificate {
  const cached = cache.get(host);
  if (cached) {
    return cached;
  }
  const altNames: { type: number; value?: string; ip?: string }[] = [
    { type: 2, value: 'localhost' },
    { type: 7, ip: '127.0.0.1' },
    { type: 7, ip: '::1' },
  ];
  if (host !== 'localhost' && host !== '127.0.0.1' && host !== '::1' && !isWildcard(host)) {
    altNames.push(isIP(host) ? { type: 7, ip: host } : { type: 2, value: host });
  }
  const pems = generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    days: 30,
    algorithm: 'sha256',
    extensions: [
      // cA so that Node accepts the certificate as its own trust anchor in `ca`.
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  });
  const certificate = { key: pems.private, cert: pems.cert };
  cache.set(host, certificate);
  return certificate;
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}
