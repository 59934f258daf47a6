import { expect } from 'vitest';
import type { BackendResponse, JsonCall } from '../backends/backend.js';

/** A JSON call as the gateway makes it once the router picked the model. */
export function contractCall(
  endpoint: JsonCall['endpoint'],
  model: string,
  body: Record<string, unknown>,
  signal: AbortSignal = new AbortController().signal,
): JsonCall {
  return {
    kind: 'json',
    endpoint,
    model,
    body: { ...body, model },
    stream: body.stream === true,
    signal,
    requestId: 'req_contract',
  };
}

/** The whole body as text, checking on the way that every chunk is a Buffer (what the pipeline writes). */
export async function readText(response: BackendResponse): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of response.body) {
    expect(Buffer.isBuffer(chunk), 'every body chunk is a Buffer').toBe(true);
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString('utf8');
}

export async function readJson(response: BackendResponse): Promise<Record<string, unknown>> {
  expect(response.status).toBeGreaterThanOrEqual(200);
  expect(response.status).toBeLessThan(300);
  expect(response.contentType).toMatch(/json/);
  const parsed: unknown = JSON.parse(await readText(response));
  expect(parsed).toBeTypeOf('object');
  return parsed as Record<string, unknown>;
}

export interface SseEvent {
  name: string | undefined;
  data: string;
}

/** Splits an SSE body into its events (comments dropped). */
export function sseEvents(raw: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of raw.split(/\r?\n\r?\n/)) {
    let name: string | undefined;
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith('event:')) name = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length > 0) events.push({ name, data: data.join('\n') });
  }
  return events;
}

/** A stream's whole text, after checking it is SSE. */
export async function readSse(response: BackendResponse): Promise<string> {
  expect(response.status).toBeGreaterThanOrEqual(200);
  expect(response.status).toBeLessThan(300);
  expect(response.contentType).toMatch(/^text\/event-stream/);
  return readText(response);
}
