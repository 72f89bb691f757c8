import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Plays the Azure front end in front of a local broker: appends the caller's
 * public address to X-Forwarded-For, as Azure Functions' front end does, so
 * pipeline clients can call the real broker as they would in Azure (the local
 * runner adds no such header). Everything else passes through unchanged.
 */
export interface FrontEnd {
  url: string;
  /** The address appended to X-Forwarded-For; change it between calls. */
  clientAddress: string;
  close(): Promise<void>;
}

export async function startFrontEnd(options: {
  upstream: string;
  clientAddress: string;
}): Promise<FrontEnd> {
  const upstream = new URL(options.upstream);
  const state = { clientAddress: options.clientAddress };
  const server: Server = createServer((incoming, outgoing) => {
    const forwarded = incoming.headers['x-forwarded-for'];
    const chain = [forwarded, state.clientAddress].filter(Boolean).join(', ');
    const proxied = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: incoming.method,
        path: incoming.url,
        headers: { ...incoming.headers, host: upstream.host, 'x-forwarded-for': chain },
      },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      },
    );
    proxied.on('error', () => {
      if (!outgoing.headersSent) outgoing.writeHead(502);
      outgoing.end();
    });
    // NOTE: a caller that goes away (a cancelled step) does not cancel the
    // upstream request: the Functions host runs the function to its end.
    incoming.pipe(proxied);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get clientAddress() {
      return state.clientAddress;
    },
    set clientAddress(value: string) {
      state.clientAddress = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
