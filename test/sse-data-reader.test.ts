import { describe, expect, it } from 'vitest';
import { SseDataReader } from '../src/backends/sse-data-reader.js';

function readAll(text: string, cut: number): string[] {
  const reader = new SseDataReader();
  const bytes = Buffer.from(text, 'utf8');
  const out: string[] = [];
  for (let at = 0; at < bytes.length; at += cut) out.push(...reader.push(bytes.subarray(at, at + cut)));
  return [...out, ...reader.end()];
}

describe('the SSE data reader the translating adapters share', () => {
  const stream =
    ': keep-alive\n\nevent: message_start\ndata: {"a":"é"}\n\r\ndata: line one\r\ndata: line two\r\n\r\nid: 7\n\ndata: [DONE]';

  it('gives each event’s data, however the bytes are cut (CRLF, split characters, no final blank line)', () => {
    const whole = readAll(stream, stream.length);
    expect(whole).toEqual(['{"a":"é"}', 'line one\nline two', '[DONE]']);
    for (const cut of [1, 2, 3, 5, 7]) expect(readAll(stream, cut)).toEqual(whole);
  });

  it('keeps one long event whole across many chunks, and refuses one past 16 MiB', () => {
    const long = 'x'.repeat(200_000);
    expect(readAll(`data: ${long}\n\ndata: next\n\n`, 4_096)).toEqual([long, 'next']);
    const reader = new SseDataReader();
    const piece = Buffer.alloc(1024 * 1024, 'y');
    expect(() => {
      for (let i = 0; i < 17; i++) reader.push(piece);
    }).toThrow(/larger than 16 MiB/);
  });
});
