import { describe, expect, it } from 'vitest';
import { encodeDone, encodeEvent } from '../src/backends/sse-encoder.js';
import { SseSplitter, splitEvents } from '../src/backends/sse-splitter.js';
import { eventData } from '../src/pipeline/usage.js';

describe('the shared SSE encoder', () => {
  it('frames a data event on one line, even when strings hold newlines', () => {
    const payload = { choices: [{ delta: { content: 'two\nlines\n\n' } }] };
    const event = encodeEvent(payload);
    expect(event).toBe(`data: ${JSON.stringify(payload)}\n\n`);
    const block = new SseSplitter().push(Buffer.from(event));
    expect(block && splitEvents(block)).toHaveLength(1);
    expect(eventData(Buffer.from(event))).toEqual(payload);
  });

  it('names Responses API events and ends chat streams with [DONE]', () => {
    expect(encodeEvent({ type: 'response.created' }, 'response.created')).toBe(
      'event: response.created\ndata: {"type":"response.created"}\n\n',
    );
    expect(encodeDone()).toBe('data: [DONE]\n\n');
  });
});
