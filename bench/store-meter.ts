import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A counting HTTP proxy in front of azurite's Table endpoint: every store
 * round trip of the brokers behind it is counted (by kind), so a scenario can
 * report store operations per grant without touching the broker.
 */

export interface StoreCounts {
  total: number;
  /** Point reads and queries (GET). */
  reads: number;
  /** Inserts, updates, upserts, deletes (conditional or not). */
  writes: number;
  /** Entity-group transactions (`$batch`), each one round trip. */
  batches: number;
  /** Answers 412 (a conditional write lost) or 409. */
  refused: number;
}

export interface StoreMeter {
  /** A connection string pointing at the proxy. */
  connectionString: string;
  counts(): StoreCounts;
  reset(): void;
  close(): Promise<void>;
}

const zero = (): StoreCounts => ({ total: 0, reads: 0, writes: 0, batches: 0, refused: 0 });

/** Proxy `connectionString` (azurite's, with a `TableEndpoint=http://host:port/account`). */
export async function startStoreMeter(connectionString: string): Promise<StoreMeter> {
  const endpoint = /TableEndpoint=(http:\/\/[^;]+)/.exec(connectionString)?.[1];
  if (!endpoint) throw new Error('the store meter needs an http TableEndpoint');
  const target = new URL(endpoint);
  let counts = zero();
  const server: Server = createServer((incoming, outgoing) => {
    const url = incoming.url ?? '';
    counts.total += 1;
    if (url.includes('$batch')) counts.batches += 1;
    else if (incoming.method === 'GET') counts.reads += 1;
    else counts.writes += 1;
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: incoming.method,
        path: url,
        headers: { ...incoming.headers, host: target.host },
      },
      (answer) => {
        if (answer.statusCode === 412 || answer.statusCode === 409) counts.refused += 1;
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    upstream.on('error', () => outgoing.destroy());
    incoming.pipe(upstream);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    connectionString: connectionString.replace(
      endpoint,
      `http://127.0.0.1:${port}${target.pathname}`,
    ),
    counts: () => ({ ...counts }),
    reset: () => {
      counts = zero();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
