import type { ServerResponse } from 'node:http';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendRegistry } from '../src/backends/registry.js';
import { StreamShutdown } from '../src/http/stream-shutdown.js';
import { ResponsesSequence } from '../src/pipeline/responses-sequence.js';
import { chatOnlyUpstream } from './support/chat-only-backend.js';
import { FakeUpstream } from './support/fake-upstream.js';
import { startGateway, type TestGateway } from './support/gateway.js';

/**
 * A `/v1/responses` stream that shutdown's grace period ends gets the Responses API's `error`
 * event numbered as the one after the last event it relayed, not 2^53-1, whether the gateway
 * translated the stream from chat completions or relayed an upstream's own Responses stream; so
 * does one whose upstream broke off. Real gateway in process (shutdown stopped by the test), real
 * upstreams whose streams end only when the gateway lets them go or the test breaks them off, the
 * OpenAI SDK as the client (with the bytes it read kept, for the numbers it does not show).
 */

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const SHUTTING_DOWN = /shutting down.*send the request again/;
const BODY_LIMIT = 25 * 1024 * 1024;

/** Lets the test break off the upstream's streams (their connections), when it has read them. */
class BreakOff {
  private resolve!: () => void;
  readonly broken = new Promise<void>((resolve) => {
    this.resolve = resolve;
  });
  now(): void {
    this.resolve();
  }
}

/** Sends `events` and then nothing: until the gateway lets the request go, or `breakOff` says. */
function endless(res: ServerResponse, events: string[], breakOff: BreakOff): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const event of events) res.write(event);
  void breakOff.broken.then(() => res.destroy());
}

/** Chat chunks of an answer still being written: the translation makes several events of them. */
function chatUpstream(breakOff: BreakOff): FakeUpstream {
  const chunk = (delta: Record<string, unknown>) =>
    `data: ${JSON.stringify({
      id: 'c',
      object: 'chat.completion.chunk',
      created: 1,
      model: 'm',
      choices: [{ index: 0, delta, finish_reason: null }],
    })}\n\n`;
  return new FakeUpstream().on('POST', '/v1/chat/completions', (_request, res) =>
    endless(
      res,
      [
        chunk({ role: 'assistant', content: '' }),
        chunk({ content: 'one two' }),
        chunk({ content: ' three' }),
      ],
      breakOff,
    ),
  );
}

/** An upstream with its own Responses API, numbering its events from 0 (with a space, as Python's JSON does). */
function responsesUpstream(breakOff: BreakOff): FakeUpstream {
  const response = { id: 'resp_1', object: 'response', status: 'in_progress', model: 'm', output: [] };
  const events: Array<Record<string, unknown>> = [
    { type: 'response.created', response },
    { type: 'response.in_progress', response },
    {
      type: 'response.output_item.added',
      output_index: 0,
      item: { id: 'msg_1', type: 'message', status: 'in_progress', role: 'assistant', content: [] },
    },
    {
      type: 'response.content_part.added',
      item_id: 'msg_1',
      output_index: 0,
      content_index: 0,
      part: { type: 'output_text', text: '', annotations: [] },
    },
    // Text that looks like a sequence number is not one.
    {
      type: 'response.output_text.delta',
      item_id: 'msg_1',
      output_index: 0,
      content_index: 0,
      delta: '"sequence_number": 99',
    },
    {
      type: 'response.output_text.delta',
      item_id: 'msg_1',
      output_index: 0,
      content_index: 0,
      delta: ' two',
    },
  ];
  return new FakeUpstream().on('POST', '/v1/responses', (_request, res) =>
    endless(
      res,
      events.map(
        (event, sequence) =>
          `event: ${event.type}\ndata: ${JSON.stringify({ ...event, sequence_number: sequence }).replace('"sequence_number":', '"sequence_number": ')}\n\n`,
      ),
      breakOff,
    ),
  );
}

async function gatewayFor(
  upstream: FakeUpstream,
  translated: boolean,
): Promise<{ gw: TestGateway; shutdown: StreamShutdown }> {
  const url = await upstream.start();
  cleanups.push(() => upstream.stop());
  const shutdown = new StreamShutdown();
  const gw = translated
    ? await startGateway(
        { backends: { local: { type: 'mock' } }, models: { m: { backend: 'local' } } },
        {},
        { registry: new BackendRegistry([chatOnlyUpstream('local', url)]), streamShutdown: shutdown },
      )
    : await startGateway(
        {
          backends: { up: { type: 'openai', baseUrl: `${url}/v1`, apiKey: 'k' } },
          models: { m: { backend: 'up' } },
        },
        {},
        { streamShutdown: shutdown },
      );
  cleanups.push(() => gw.close());
  return { gw, shutdown };
}

/** The OpenAI SDK, keeping a copy of every byte the gateway sent it. */
function recordingClient(baseURL: string): { client: OpenAI; wire: () => string } {
  let text = '';
  const decoder = new TextDecoder();
  const client = new OpenAI({
    baseURL,
    apiKey: 'unused',
    maxRetries: 0,
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      if (!response.body) return response;
      // Each chunk is kept as it passes to the SDK: what it has read is all on record.
      const recorded = response.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            text += decoder.decode(chunk, { stream: true });
            controller.enqueue(chunk);
          },
        }),
      );
      return new Response(recorded, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
    },
  });
  return { client, wire: () => text };
}

/** The `data:` of every event on the wire, parsed, with its `event:` name. */
function eventsOf(text: string): Array<{ name: string | undefined; data: Record<string, unknown> }> {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data:'))
    .map((block) => {
      const lines = block.split('\n');
      const name = lines
        .find((line) => line.startsWith('event:'))
        ?.slice(6)
        .trim();
      const data = lines
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trim())
        .join('\n');
      return { name, data: JSON.parse(data) as Record<string, unknown> };
    });
}

const UPSTREAMS = [
  ['translated from a chat upstream', true, 'one two three'],
  ["relayed from an upstream's own Responses API", false, '"sequence_number": 99 two'],
] as const;

/**
 * Opens a stream of `m` through the SDK and reads it until the text `sent` has come: all the
 * upstream sent is relayed, and the stream waits on it. `end` then ends it; resolves with the
 * numbers of the events read until then, what the SDK threw at the end, and every event on the wire.
 */
async function endedStream(
  gw: TestGateway,
  sent: string,
  end: () => Promise<void> | void,
): Promise<{
  seen: number[];
  failure: unknown;
  onWire: Array<{ name: string | undefined; data: Record<string, unknown> }>;
}> {
  const { client, wire } = recordingClient(gw.baseURL);
  const stream = await client.responses.create({ model: 'm', input: 'count', stream: true });
  const seen: number[] = [];
  let text = '';
  const events = stream[Symbol.asyncIterator]();
  while (text !== sent) {
    const next = await events.next();
    if (next.done) throw new Error('the stream ended before its text');
    seen.push(next.value.sequence_number);
    if (next.value.type === 'response.output_text.delta') text += next.value.delta;
  }
  await end();
  // Read to the end: the SDK yields the events before the error event, and throws on that.
  let failure: unknown;
  for (;;) {
    const next = await events.next().catch((error: unknown) => {
      failure = error;
      return { done: true as const, value: undefined };
    });
    if (next.done) break;
  }
  return { seen, failure, onWire: eventsOf(wire()) };
}

describe('a Responses stream ended by shutdown', () => {
  it.each(UPSTREAMS)('%s: its error event has the next sequence number', async (_what, translated, sent) => {
    const breakOff = new BreakOff();
    const { gw, shutdown } = await gatewayFor(
      translated ? chatUpstream(breakOff) : responsesUpstream(breakOff),
      translated,
    );
    const { seen, failure, onWire } = await endedStream(gw, sent, () => shutdown.stop(1_000, BODY_LIMIT));
    // The SDK reads the error event as the stream's failure.
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect((failure as InstanceType<typeof OpenAI.APIError>).message).toMatch(SHUTTING_DOWN);
    const last = onWire.at(-1);
    expect(last?.name).toBe('error');
    expect(last?.data).toMatchObject({
      type: 'error',
      code: 'service_unavailable',
      message: expect.stringMatching(SHUTTING_DOWN),
    });
    // Numbered from 0 without a gap, the error event the one after the last relayed.
    expect(seen.length).toBeGreaterThan(3);
    expect(seen).toEqual(seen.map((_, index) => index));
    expect(onWire.map((event) => event.data.sequence_number)).toEqual(onWire.map((_, index) => index));
    expect(last?.data.sequence_number).toBe(seen.length);
  });
});

describe('a Responses stream whose upstream broke off', () => {
  it.each(UPSTREAMS)('%s: its error event has the next sequence number', async (_what, translated, sent) => {
    const breakOff = new BreakOff();
    const { gw } = await gatewayFor(
      translated ? chatUpstream(breakOff) : responsesUpstream(breakOff),
      translated,
    );
    const { seen, failure, onWire } = await endedStream(gw, sent, () => breakOff.now());
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    const last = onWire.at(-1);
    expect(last?.name).toBe('error');
    expect(last?.data).toMatchObject({ type: 'error', code: 'upstream_error' });
    // The translation says response.failed first (numbered by it), the gateway's error event after.
    if (translated) expect(onWire.at(-2)?.data.type).toBe('response.failed');
    expect(onWire.map((event) => event.data.sequence_number)).toEqual(onWire.map((_, index) => index));
    expect(last?.data.sequence_number).toBe(onWire.length - 1);
    expect(last?.data.sequence_number).toBeGreaterThan(seen.length - 1);
  });
});

describe('ResponsesSequence (the relay reading the numbers of the events it passed on)', () => {
  const block = (...events: unknown[]) =>
    Buffer.from(events.map((event) => `event: x\ndata: ${JSON.stringify(event)}\n\n`).join(''));

  it('is 0 before any numbered event, then the one after the highest', () => {
    const sequence = new ResponsesSequence();
    expect(sequence.next).toBe(0);
    sequence.see(block({ type: 'x' }));
    expect(sequence.next).toBe(0);
    sequence.see(block({ type: 'x', sequence_number: 0 }, { type: 'y', sequence_number: 1 }));
    sequence.see(Buffer.from('data: {"type":"z",\n"sequence_number" :  7}\n\n'));
    expect(sequence.next).toBe(8);
  });

  it('takes no number a text carries, nor one that is not a count', () => {
    const sequence = new ResponsesSequence();
    sequence.see(block({ type: 'd', delta: '"sequence_number": 99', sequence_number: 3 }));
    sequence.see(block({ type: 'e', sequence_number: -40 }, { type: 'f', sequence_number: 9e300 }));
    sequence.see(block({ type: 'g', sequence_number: '12' }, { type: 'h', sequence_number: 40.5 }));
    sequence.see(block({ type: 'i', sequence_number: 5e20 }));
    expect(sequence.next).toBe(4);
  });
});
