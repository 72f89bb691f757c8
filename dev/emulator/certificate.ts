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
  const names = ['localhost', '127.0.0.1', '::1'];
  if (!names.includes(host) && !isWildcard(host)) names.push(host);
  const certificate = selfSignedCertificate(names, 30);
  cache.set(host, certificate);
  return certificate;
}

/**
 * A certificate for `names` (DNS names and IP addresses; the first is the common name) that is its
 * own CA, so that a client trusts it through `ca` or `NODE_EXTRA_CA_CERTS` alone.
 */
export function selfSignedCertificate(names: string[], days: number): Certificate {
  const altNames = names.map((name) =>
    isIP(name) ? { type: 7, ip: name } : { type: 2, value: name },
  );
  const pems = generate([{ name: 'commonName', value: names[0] ?? 'localhost' }], {
    keySize: 2048,
    days,
    algorithm: 'sha256',
    extensions: [
      // cA so that Node accepts the certificate as its own trust anchor in `ca`.
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  });
  return { key: pems.private, cert: pems.cert };
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}
