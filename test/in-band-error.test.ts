import { describe, expect, it } from 'vitest';
import { UpstreamClientError, UpstreamError, UpstreamOverloadedError } from '../src/errors.js';
import { hasErrorEvent, inBandError, jsonAnswerError } from '../src/pipeline/in-band-error.js';

/**
 * What the gateway takes for an upstream's error said with a 200: a whole JSON answer that is an
 * error object and nothing else, a stream's first event, a later event. Everything that only
 * speaks of errors (a null `error`, the word in a text, an error field beside the answer) is not.
 */
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const event = (value: unknown, name?: string) =>
  Buffer.from(`${name ? `event: ${name}\n` : ''}data: ${JSON.stringify(value)}\n\n`);

describe('a whole JSON answer with a 200', () => {
  it('that is only an error object is the failure its type or code says', () => {
    expect(jsonAnswerError(json({ error: { message: 'boom', type: 'server_error' } }))).toBeInstanceOf(
      UpstreamError,
    );
    expect(jsonAnswerError(json({ error: { message: 'busy', type: 'overloaded_error' } }))).toBeInstanceOf(
      UpstreamOverloadedError,
    );
    const limited = jsonAnswerError(json({ error: { message: 'slow', code: 'rate_limit_exceeded' } }));
    expect(limited).toBeInstanceOf(UpstreamClientError);
    expect((limited as UpstreamClientError).status).toBe(429);
    // TGI's bare message with its error_type: a validation error is the client's 400.
    const tgi = jsonAnswerError(
      json({ error: 'Input validation error: too long', error_type: 'validation' }),
    );
    expect((tgi as UpstreamClientError).status).toBe(400);
    expect(jsonAnswerError(json({ error: 'model crashed', error_type: 'generation' }))).toBeInstanceOf(
      UpstreamError,
    );
  });

  it('that is an answer is one, whatever error field it also carries', () => {
    for (const answer of [
      { object: 'chat.completion', choices: [{ index: 0 }], error: { message: 'ignored' } },
      { object: 'list', data: [{ embedding: [1] }], error: 'partial' },
      { object: 'response', status: 'failed', error: { code: 'server_error', message: 'x' }, output: [] },
      { object: 'response', status: 'completed', error: null, output: [] },
      { type: 'message', content: [{ type: 'text', text: '"error"' }] },
      { id: 'x', error: {} },
      { error: null },
    ]) {
      expect(jsonAnswerError(json(answer)), JSON.stringify(answer)).toBeUndefined();
    }
    // Not JSON at all: relayed as it came, not taken for an error.
    expect(jsonAnswerError(Buffer.from('{"error": {"message": "cut'))).toBeUndefined();
  });
});

describe('stream events', () => {
  it('an error object, type error, response.failed or an event named error is an error event', () => {
    for (const block of [
      event({ error: { message: 'boom', type: 'server_error' } }),
      event({ type: 'error', error: { type: 'overloaded_error', message: 'busy' } }, 'error'),
      event({ type: 'error', code: 'server_error', message: 'x', sequence_number: 3 }),
      event({ type: 'response.failed', response: { status: 'failed', error: null } }),
      event({ message: 'boom' }, 'error'),
      Buffer.from('event: error\r\ndata: oops\r\n\r\n'),
    ]) {
      expect(hasErrorEvent(block), block.toString()).toBe(true);
    }
  });

  it('a chunk that speaks of errors is not one', () => {
    for (const block of [
      event({ object: 'chat.completion.chunk', choices: [{ delta: { content: 'error' } }] }),
      event({ object: 'chat.completion.chunk', choices: [{ delta: { content: '"error"' } }], error: null }),
      event({ type: 'response.completed', response: { status: 'completed', error: null } }),
      event({ type: 'content_block_delta', delta: { type: 'text_delta', text: 'event: error' } }),
      Buffer.from(': ping\n\n'),
    ]) {
      expect(hasErrorEvent(block), block.toString()).toBe(false);
    }
  });

  it('the first event: the failure it stands for, or nothing', () => {
    expect(inBandError(event({ error: { message: 'slow', code: 'rate_limit_exceeded' } }))).toBeInstanceOf(
      UpstreamClientError,
    );
    expect(
      inBandError(Buffer.concat([Buffer.from(': ping\n\n'), event({ message: 'x' }, 'error')])),
    ).toBeInstanceOf(UpstreamError);
    expect(inBandError(event({ object: 'chat.completion.chunk', choices: [], error: null }))).toBeUndefined();
    expect(inBandError(undefined)).toBeUndefined();
  });
});
