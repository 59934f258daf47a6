import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { LocalServerType } from '../../src/config/local-server-schema.js';
import { chatChunkFixtures, chatCompletionFixture } from './openai-fixtures.js';

/** One request as the fake server saw it. */
export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  json: Record<string, unknown> | undefined;
}

export interface FakeLocalServerOptions {
  /** Models "pulled" (Ollama), "served" (vLLM, llama.cpp) or "loaded" (LM Studio) at start. */
  models: string[];
  /** Sends the usage chunk on streams when asked (`stream_options.include_usage`). Default true. */
  streamUsage?: boolean;
  /** `/v1/models` answers this status instead of the list (Ollama's `/api/tags` still answers). */
  v1ModelsStatus?: number;
}

/**
 * A real HTTP server on 127.0.0.1 speaking one local model server's discovery endpoints
 * (`GET /v1/models`; Ollama also `GET /api/tags`), chat completions (JSON and SSE) and
 * embeddings, with each server's own 404 body for a model it does not have. It can be stopped
 * (connections refused: the server is down) and started again on the same port.
 */
export class FakeLocalServer {
  readonly requests: SeenRequest[] = [];
  readonly models: string[];
  streamUsage: boolean;
  v1ModelsStatus: number | undefined;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private boundPort = 0;

  constructor(
    readonly kind: LocalServerType,
    options: FakeLocalServerOptions,
  ) {
    this.models = [...options.models];
    this.streamUsage = options.streamUsage ?? true;
    this.v1ModelsStatus = options.v1ModelsStatus;
  }

  /** `http://127.0.0.1:<port>/v1`: the backend's baseUrl. */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.boundPort}/v1`;
  }

  /** Listens (again on the same port after a stop). */
  async start(): Promise<this> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    if (this.boundPort === 0) this.boundPort = await listenBelowEphemeralRange(server);
    else {
      server.listen(this.boundPort, '127.0.0.1');
      await once(server, 'listening');
    }
    this.server = server;
    return this;
  }

  /** Closes the port: connections are refused until `start` again. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** A model becomes available, as after `ollama pull` or loading it in LM Studio. */
  pull(model: string): void {
    if (!this.models.includes(model)) this.models.push(model);
  }

  /** Requests for one path (`/v1/chat/completions`). */
  seen(path: string): SeenRequest[] {
    return this.requests.filter((request) => request.path === path);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let json: Record<string, unknown> | undefined;
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    } catch {
      json = undefined;
    }
    const path = (req.url ?? '').split('?')[0] ?? '';
    this.requests.push({ method: req.method ?? '', path, headers: req.headers, json });
    const route = `${req.method} ${path}`;
    if (route === 'GET /v1/models') this.listModels(res);
    else if (route === 'GET /api/tags' && this.kind === 'ollama') this.listTags(res);
    else if (route === 'POST /v1/chat/completions') this.chat(res, json ?? {});
    else if (route === 'POST /v1/embeddings') this.embeddings(res, json ?? {});
    else send(res, 404, notFound(this.kind, `${req.method} ${path}`));
  }

  private listModels(res: ServerResponse): void {
    if (this.v1ModelsStatus !== undefined) {
      send(res, this.v1ModelsStatus, { error: { message: 'unavailable', type: 'api_error' } });
      return;
    }
    send(res, 200, {
      object: 'list',
      data: this.models.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: this.kind })),
    });
  }

  private listTags(res: ServerResponse): void {
    send(res, 200, {
      models: this.models.map((name) => ({
        name,
        model: name,
        modified_at: '2026-11-30T10:00:00Z',
        size: 1_000_000,
        digest: 'sha256:0',
        details: { format: 'gguf', family: 'llama', parameter_size: '1B', quantization_level: 'Q4_0' },
      })),
    });
  }

  private chat(res: ServerResponse, body: Record<string, unknown>): void {
    const model = String(body.model);
    if (!this.models.includes(model)) {
      send(res, 404, modelNotFound(this.kind, model));
      return;
    }
    if (body.stream !== true) {
      send(res, 200, chatCompletionFixture(model, `hello from ${this.kind}`));
      return;
    }
    const options = body.stream_options as { include_usage?: unknown } | undefined;
    const usage = this.streamUsage && options?.include_usage === true;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const chunk of chatChunkFixtures(model, ['one', ' two', ' three'], usage)) {
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    }
    res.end('data: [DONE]\n\n');
  }

  private embeddings(res: ServerResponse, body: Record<string, unknown>): void {
    const model = String(body.model);
    if (!this.models.includes(model)) {
      send(res, 404, modelNotFound(this.kind, model));
      return;
    }
    send(res, 200, {
      object: 'list',
      data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2, 0.3] }],
      model,
      usage: { prompt_tokens: 2, total_tokens: 2 },
    });
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Each server's own answer for a model it does not have (vLLM's is not OpenAI's envelope). */
function modelNotFound(kind: LocalServerType, model: string): unknown {
  switch (kind) {
    case 'ollama':
      return {
        error: {
          message: `model "${model}" not found, try pulling it first`,
          type: 'api_error',
          param: null,
          code: null,
        },
      };
    case 'vllm':
      return {
        object: 'error',
        message: `The model \`${model}\` does not exist.`,
        type: 'NotFoundError',
        param: null,
        code: 404,
      };
    case 'llamacpp-server':
      return { error: { code: 404, message: 'model not found', type: 'not_found_error' } };
    case 'lmstudio':
      return { error: { message: `Model "${model}" not found`, type: 'invalid_request_error' } };
  }
}

function notFound(kind: LocalServerType, what: string): unknown {
  return kind === 'vllm'
    ? { object: 'error', message: `Not Found: ${what}`, type: 'NotFoundError', param: null, code: 404 }
    : { error: { message: `Not found: ${what}`, type: 'not_found_error' } };
}

/**
 * Listens on a free port under Linux's ephemeral range (32768-60999 by default). A stopped fake must
 * get its port back on `start`; a port the kernel hands out for `listen(0)` or an outgoing
 * connection could be taken by another test process in between and fail the restart.
 */
async function listenBelowEphemeralRange(server: Server): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const failure = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const onError = (error: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        resolve(error);
      };
      const onListening = () => {
        server.off('error', onError);
        resolve(undefined);
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(port, '127.0.0.1');
    });
    if (failure === undefined) return port;
    if (failure.code !== 'EADDRINUSE') throw failure;
  }
  throw new Error('no free port between 20000 and 32000 after 50 tries');
}

/** A fake of `kind`, listening on a free port. */
export async function startFakeLocalServer(
  kind: LocalServerType,
  options: FakeLocalServerOptions,
): Promise<FakeLocalServer> {
  return new FakeLocalServer(kind, options).start();
}
