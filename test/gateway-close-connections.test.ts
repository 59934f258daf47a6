import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeUpstream } from './support/fake-upstream.js';
import { Gate } from './support/gate.js';
import { startGateway, type TestGateway, upstreamConfig } from './support/gateway.js';
import { exitCodeOf, startGatewayProcess } from './support/gateway-process.js';
import { chatChunkFixtures } from './support/openai-fixtures.js';
import { pollUntil } from './support/poll.js';

/**
 * Stopping waits for requests, never for connections that carry none: one a client opened and
 * has not sent a byte on yet (Node's fetch opens one after an aborted stream, a browser
 * preconnects), and one whose last answer ended while the gateway was stopping. Node leaves both
 * open at server.close() until their client gives up on them. These clients never do: without
 * the reaping, stopping would wait for them until the test's timeout.
 */

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A TCP connection to `port` that sends nothing; resolves once connected. */
async function silentConnection(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  cleanups.push(() => void socket.destroy());
  await once(socket, 'connect');
  return socket;
}

async function gateway(upstream?: FakeUpstream): Promise<TestGateway> {
  const base = upstream ? await upstream.start() : 'http://127.0.0.1:9';
  if (upstream) cleanups.push(() => upstream.stop());
  const gw = await startGateway(upstreamConfig(base));
  cleanups.push(() => gw.close());
  return gw;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

describe('closing a test gateway (what serve does on SIGTERM)', () => {
  it('closes a connection that never sent a request, rather than waiting for its client', async () => {
    const gw = await gateway();
    const silent = await silentConnection(portOf(gw.url));
    const cut = once(silent, 'close');
    await gw.close();
    await cut;
  });

  it('closes a keep-alive connection whose answer ended after closing began', async () => {
    const hold = new Gate();
    let arrived: () => void = () => {};
    const upstreamHas = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const upstream = new FakeUpstream().on('POST', '/v1/chat/completions', async (_request, res) => {
      arrived();
      await hold.opened;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (const chunk of chatChunkFixtures('m', ['done'], false))
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
      res.end('data: [DONE]\n\n');
    });
    const gw = await gateway(upstream);
    // Keeps its connections open for good: only the gateway can end this one.
    const agent = new Agent({ keepAlive: true });
    cleanups.push(() => agent.destroy());
    const answered = post(agent, `${gw.url}/v1/chat/completions`, {
      model: 'gpt-test',
      stream: true,
      messages: [{ role: 'user', content: 'x' }],
    });
    await upstreamHas;
    const closing = gw.close();
    hold.open();
    const { status, socket } = await answered;
    expect(status).toBe(200);
    await once(socket, 'close');
    await closing;
  });

  it('still answers a request whose first bytes arrived before closing began', async () => {
    const gw = await gateway();
    const accepted: Socket[] = [];
    gw.app.server.on('connection', (socket: Socket) => accepted.push(socket));
    const socket = await silentConnection(portOf(gw.url));
    const head = 'GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n';
    socket.write(head);
    // The gateway has read the start of the request: it has begun.
    await pollUntil(
      async () => accepted[0]?.bytesRead ?? 0,
      (read) => read === head.length,
    );
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
    });
    const closing = gw.close();
    socket.write('\r\n');
    await once(socket, 'close');
    await closing;
    expect(answer).toMatch(/^HTTP\/1\.1 \d{3} /);
  });
});

describe('a gateway process stopped by SIGTERM', () => {
  it('exits without waiting out the grace period for a connection that never sent a request', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-close-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, 'tollgate.yaml');
    // Far past the test's timeout: a stop that waited for the grace period to end would fail it.
    writeFileSync(
      config,
      'server: { shutdownGraceMs: 60000 }\nbackends: { mock: { type: mock } }\nmodels: { mock: { backend: mock } }\n',
    );
    const gateway = await startGatewayProcess({ TOLLGATE_AUTH: 'none', TOLLGATE_CONFIG: config });
    cleanups.push(() => gateway.stop());
    const silent = await silentConnection(portOf(gateway.url));
    const cut = once(silent, 'close');
    const exit = exitCodeOf(gateway);
    gateway.child.kill('SIGTERM');
    await cut;
    expect(await exit).toBe(0);
  });
});

function post(
  agent: Agent,
  url: string,
  body: Record<string, unknown>,
): Promise<{ status: number | undefined; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
      (response) => {
        response.resume();
        response.once('end', () =>
          resolve({ status: response.statusCode, socket: request.socket as Socket }),
        );
      },
    );
    request.once('error', reject);
    request.end(JSON.stringify(body));
  });
}
