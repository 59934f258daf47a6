import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the upstream saw it. */
export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** Parsed when the body was JSON. */
  json: Record<string, unknown> | undefined;
  /** Set when the connection closed before the upstream finished answering. */
  aborted: boolean;
}

export type UpstreamHandler = (
  request: RecordedRequest,
  response: ServerResponse,
  raw: IncomingMessage,
) => void | Promise<void>;

/**
 * A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: each route answers with a
 * handler the test sets, and every request is recorded, including whether it was aborted.
 */
export class FakeUpstream {
  readonly requests: RecordedRequest[] = [];
  private readonly handlers = new Map<string, UpstreamHandler>();
  private server: Server | undefined;
  private readonly sockets = new Set<import('node:net').Socket>();
  private abortWaiters: Array<() => void> = [];

  /** `POST /v1/chat/completions` -> handler. */
  on(method: string, path: string, handler: UpstreamHandler): this {
    this.handlers.set(`${method} ${path}`, handler);
    return this;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get port(): number {
    const address = this.server?.address();
    if (!address || typeof address !== 'object') throw new Error('the fake upstream is not listening');
    return (address as AddressInfo).port;
  }

  /** Resolves once some request has been aborted by the gateway. */
  waitForAbort(): Promise<void> {
    if (this.requests.some((r) => r.aborted)) return Promise.resolve();
    return new Promise((resolve) => this.abortWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of req) chunks.push(chunk as Buffer);
    } catch {
      // The gateway cut the upload off (as it must on a rejected upload); nothing to answer.
      return;
    }
    const body = Buffer.concat(chunks);
    let json: Record<string, unknown> | undefined;
    if ((req.headers['content-type'] ?? '').includes('json')) {
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch {
        json = undefined;
      }
    }
    const pathOnly = (req.url ?? '').split('?')[0];
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body,
      json,
      aborted: false,
    };
    this.requests.push(recorded);
    res.on('close', () => {
      if (!res.writableFinished) {
        recorded.aborted = true;
        for (const resolve of this.abortWaiters) resolve();
        this.abortWaiters = [];
      }
    });
    const handler = this.handlers.get(`${req.method} ${pathOnly}`);
    if (!handler) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: {
            message: `no handler for ${req.method} ${pathOnly}`,
            type: 'invalid_request_error',
            param: null,
            code: null,
          },
        }),
      );
      return;
    }
    try {
      await handler(recorded, res, req);
    } catch {
      res.destroy();
    }
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export function openaiError(
  message: string,
  type: string,
  code: string | null = null,
  param: string | null = null,
) {
  return { error: { message, type, param, code } };
}

/** Writes SSE `data:` events, one per chunk, then `[DONE]`, with an optional pause between them. */
export async function sendSse(
  res: ServerResponse,
  chunks: unknown[],
  options: { delayMs?: number; done?: boolean } = {},
): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  for (const chunk of chunks) {
    if (res.destroyed) return;
    res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
  }
  if (options.done !== false) res.write('data: [DONE]\n\n');
  res.end();
}
