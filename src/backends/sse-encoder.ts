/**
 * The SSE wire format for adapters that build streams themselves (the mock backend, providers
 * whose own format is translated to OpenAI's) and for answers replayed from the cache: one
 * encoder, so every stream the gateway writes frames its events the same way.
 */

const DONE = 'data: [DONE]\n\n';

/**
 * One event: `data: <json>`, preceded by `event: <name>` for the Responses API's named events.
 * JSON.stringify never emits a raw newline, so the payload always fits on one `data:` line.
 */
export function encodeEvent(payload: unknown, name?: string): string {
  const data = `data: ${JSON.stringify(payload)}\n\n`;
  return name === undefined ? data : `event: ${name}\n${data}`;
}

/** The `[DONE]` sentinel that ends chat and legacy completion streams (the Responses API has none). */
export function encodeDone(): string {
  return DONE;
}
