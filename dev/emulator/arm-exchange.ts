/**
 * The HTTP side every emulated Resource Manager route shares: one request and its answer (with
 * the headers Resource Manager always sends), the bounded body reader and the JSON parse that
 * fails the way Resource Manager does.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import { ArmError } from './arm-error';

const MAX_BODY_BYTES = 1024 * 1024;

/** One request and its answer, with the headers every Resource Manager answer carries. */
export class Exchange {
  readonly startedAt = Date.now();
  readonly requestId = randomUUID();
  readonly correlationId: string;
  private closedEarly = false;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly log: ((line: string) => void) | undefined,
  ) {
    const correlation = req.headers['x-ms-correlation-request-id'];
    this.correlationId = typeof correlation === 'string' ? correlation : randomUUID();
    res.once('close', () => {
      if (!res.writableFinished) {
        this.closedEarly = true;
      }
    });
  }

  /** True once the client has hung up without waiting for the answer. */
  get clientGone(): boolean {
    return this.closedEarly || this.req.socket.destroyed;
  }

  send(status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.sendText(status, 'application/json; charset=utf-8', JSON.stringify(body), headers);
  }

  /** An answer in another media type (a Storage data plane answers XML); empty text: no body. */
  sendText(
    status: number,
    contentType: string,
    payload: string,
    headers: Record<string, string> = {},
  ): void {
    if (this.res.headersSent || this.res.destroyed) {
      return;
    }
    const clientRequestId = this.req.headers['x-ms-client-request-id'];
    this.res.writeHead(status, {
      ...(payload === '' ? {} : { 'Content-Type': contentType }),
      'Content-Length': Buffer.byteLength(payload),
      'x-ms-request-id': this.requestId,
      'x-ms-correlation-request-id': this.correlationId,
      ...(typeof clientRequestId === 'string' ? { 'x-ms-client-request-id': clientRequestId } : {}),
      ...headers,
    });
    this.res.end(payload);
    this.log?.(
      `${this.req.method ?? '?'} ${this.req.url ?? '?'} -> ${status} (${Date.now() - this.startedAt} ms)`,
    );
  }

  fail(error: ArmError): void {
    this.send(error.status, error.body(), error.headers);
  }
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) {
        chunks.push(chunk);
      }
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) {
        reject(
          new ArmError(
            413,
            'RequestEntityTooLarge',
            `The request body exceeds ${MAX_BODY_BYTES} bytes.`,
          ),
        );
      } else {
        resolve(Buffer.concat(chunks));
      }
    });
    req.on('error', reject);
  });
}

export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new ArmError(
      400,
      'InvalidRequestContent',
      `The request content was invalid and could not be deserialized: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** A write must say it is JSON, as Resource Manager requires. */
export function requireJsonContent(exchange: Exchange): void {
  const contentType = exchange.req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(contentType)) {
    throw new ArmError(
      415,
      'UnsupportedMediaType',
      `The content media type '${contentType}' is not supported. Only 'application/json' is supported.`,
    );
  }
}
