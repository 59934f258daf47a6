import { describe, expect, it } from 'vitest';
import { GatewayError } from '../src/errors.js';
import { MultipartModelRewriter, multipartBoundary } from '../src/http/multipart-model-rewriter.js';

/**
 * Unit tests for the streaming multipart `model` rewriter. Every body is fed whole, split at
 * every byte position, and in 1-byte chunks: the output (concatenated) must be the input with
 * only the model value replaced, whatever the chunking.
 */

const RESOLVE = (model: string) => `upstream<${model}>`;

interface Run {
  output: Buffer;
  model: string | undefined;
  resolved: string[];
  done: boolean;
}

function run(boundary: string, chunks: Buffer[], resolve: (model: string) => string = RESOLVE): Run {
  const resolved: string[] = [];
  const rewriter = new MultipartModelRewriter(boundary, (model) => {
    resolved.push(model);
    return resolve(model);
  });
  const out: Buffer[] = [];
  for (const chunk of chunks) out.push(rewriter.write(chunk));
  out.push(rewriter.end());
  return { output: Buffer.concat(out), model: rewriter.model, resolved, done: rewriter.done };
}

/** Every way of cutting `body` into two pieces (including empty first/last pieces). */
function* twoWaySplits(body: Buffer): Generator<{ at: number; chunks: Buffer[] }> {
  for (let at = 0; at <= body.length; at++) yield { at, chunks: [body.subarray(0, at), body.subarray(at)] };
}

function oneByteChunks(body: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i++) chunks.push(body.subarray(i, i + 1));
  return chunks;
}

/** Reproducible random cuts into pieces of 1 to 40 bytes (a fixed-seed LCG, so failures replay). */
function* randomChunkings(body: Buffer, count: number): Generator<[number, Buffer[]]> {
  for (let seed = 1; seed <= count; seed++) {
    let state = seed;
    const next = () => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state;
    };
    const chunks: Buffer[] = [];
    for (let at = 0; at < body.length; ) {
      const size = 1 + (next() % 40);
      chunks.push(body.subarray(at, at + size));
      at += size;
    }
    yield [seed, chunks];
  }
}

/** Asserts the rewrite for every chunking; `expected` is the input with the model value replaced. */
function expectRewriteForEveryChunking(
  boundary: string,
  body: Buffer,
  expected: Buffer,
  model: string | undefined,
): void {
  const failures: string[] = [];
  const check = (label: string, result: Run) => {
    if (!result.output.equals(expected)) failures.push(`${label}: output differs from the expected bytes`);
    if (result.model !== model)
      failures.push(`${label}: model ${String(result.model)} (expected ${String(model)})`);
    if (result.resolved.length !== (model === undefined ? 0 : 1)) {
      failures.push(`${label}: resolver called ${result.resolved.length} times`);
    }
  };
  check('whole', run(boundary, [body]));
  for (const { at, chunks } of twoWaySplits(body)) check(`split at ${at}`, run(boundary, chunks));
  check('1-byte chunks', run(boundary, oneByteChunks(body)));
  for (const [seed, chunks] of randomChunkings(body, 50))
    check(`random chunking #${seed}`, run(boundary, chunks));
  // Report only the first few: a broken rewriter fails at hundreds of positions.
  expect(failures.slice(0, 5), `${failures.length} failing chunkings`).toEqual([]);
}

/** A file that looks as much like multipart syntax as a file can without containing the delimiter. */
function trickyFile(boundary: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a, 0x2d, 0x2d, 0x0d]),
    Buffer.from('\r\n\r\n'),
    Buffer.from(`\r\n--${boundary.slice(0, -1)}`), // a delimiter missing its last character
    Buffer.from('\r\n-'),
    Buffer.from(`\r\n--${boundary.slice(0, 3)}\r\n`),
    Buffer.from('Content-Disposition: form-data; name="model"\r\n\r\nnot-the-model\r\n'),
    Buffer.from(`--\r\n\r--${boundary.slice(1)}`),
    Buffer.from([0x0d, 0x0a, 0x2d]),
    Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37) & 0xff)),
    Buffer.from('\r'),
  ]);
}

interface Field {
  name: string;
  value: string | Buffer;
  filename?: string;
  contentType?: string;
}

/** A multipart body written by hand, as a browser or the SDKs write it. */
function handBuilt(boundary: string, fields: Field[]): Buffer {
  const parts: Buffer[] = [];
  for (const field of fields) {
    let header = `--${boundary}\r\nContent-Disposition: form-data; name="${field.name}"`;
    if (field.filename !== undefined) header += `; filename="${field.filename}"`;
    header += '\r\n';
    if (field.contentType) header += `Content-Type: ${field.contentType}\r\n`;
    parts.push(Buffer.from(`${header}\r\n`), Buffer.from(field.value), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(parts);
}

/** Bytes and Content-Type of a FormData body as undici (fetch) serialises it. */
async function formDataBody(
  form: FormData,
): Promise<{ body: Buffer; contentType: string; boundary: string }> {
  const response = new Response(form);
  const contentType = response.headers.get('content-type') ?? '';
  const boundary = multipartBoundary(contentType);
  if (!boundary) throw new Error(`no boundary in ${contentType}`);
  return { body: Buffer.from(await response.arrayBuffer()), contentType, boundary };
}

/** Replaces the one model value in `body` (located by its part header) with `replacement`. */
function replaceModelValue(body: Buffer, boundary: string, value: string, replacement: string): Buffer {
  const marker = Buffer.from(`name="model"\r\n\r\n${value}\r\n--${boundary}`);
  const at = body.indexOf(marker);
  if (at === -1 || body.indexOf(marker, at + 1) !== -1) throw new Error('model part not found exactly once');
  const valueStart = at + marker.length - `${value}\r\n--${boundary}`.length;
  return Buffer.concat([
    body.subarray(0, valueStart),
    Buffer.from(replacement),
    body.subarray(valueStart + Buffer.byteLength(value)),
  ]);
}

describe('multipartBoundary', () => {
  it('reads a plain boundary', () => {
    expect(multipartBoundary('multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxk')).toBe(
      '----WebKitFormBoundary7MA4YWxk',
    );
  });

  it('reads a quoted boundary, including characters only allowed inside quotes', () => {
    expect(multipartBoundary('multipart/form-data; boundary="simple boundary:with/odd=chars"')).toBe(
      'simple boundary:with/odd=chars',
    );
  });

  it('stops at the next parameter and ignores parameter case', () => {
    expect(multipartBoundary('multipart/form-data; boundary=abc123; charset=utf-8')).toBe('abc123');
    expect(multipartBoundary('multipart/form-data; charset=utf-8; BOUNDARY=xyz')).toBe('xyz');
  });

  it('is undefined without a boundary or a content type', () => {
    expect(multipartBoundary('multipart/form-data')).toBeUndefined();
    expect(multipartBoundary('application/json')).toBeUndefined();
    expect(multipartBoundary(undefined)).toBeUndefined();
  });

  it('reads the boundary undici writes for a FormData body', async () => {
    const form = new FormData();
    form.set('model', 'x');
    const { body, boundary } = await formDataBody(form);
    expect(body.subarray(0, boundary.length + 2).toString('latin1')).toBe(`--${boundary}`);
  });
});

describe('MultipartModelRewriter on FormData bodies', () => {
  /**
   * undici picks a fresh random boundary for every serialisation, all sharing a long fixed prefix;
   * a file built from another serialisation's boundary is full of near-miss delimiters.
   */
  async function fileBytes(): Promise<Buffer> {
    const probe = new FormData();
    probe.set('model', 'x');
    return trickyFile((await formDataBody(probe)).boundary);
  }

  it('rewrites a model sent before a binary file, for every chunking', async () => {
    const form = new FormData();
    form.set('model', 'gpt-test');
    form.set('file', new Blob([new Uint8Array(await fileBytes())], { type: 'audio/wav' }), 'a.wav');
    form.set('response_format', 'json');
    const { body, boundary } = await formDataBody(form);
    const expected = replaceModelValue(body, boundary, 'gpt-test', RESOLVE('gpt-test'));
    expect(expected.length).toBe(body.length + RESOLVE('gpt-test').length - 'gpt-test'.length);
    expectRewriteForEveryChunking(boundary, body, expected, 'gpt-test');
  });

  it('rewrites a model sent after a binary file, for every chunking', async () => {
    const form = new FormData();
    form.set('file', new Blob([new Uint8Array(await fileBytes())]), 'a.wav');
    form.set('temperature', '0.2');
    form.set('model', 'org/model-a');
    const { body, boundary } = await formDataBody(form);
    const expected = replaceModelValue(body, boundary, 'org/model-a', RESOLVE('org/model-a'));
    expectRewriteForEveryChunking(boundary, body, expected, 'org/model-a');
  });

  it('passes a body without a model field through unchanged, reporting no model', async () => {
    const form = new FormData();
    form.set('file', new Blob([new Uint8Array(await fileBytes())]), 'model');
    form.set('language', 'en');
    const { body, boundary } = await formDataBody(form);
    expectRewriteForEveryChunking(boundary, body, body, undefined);
    expect(run(boundary, [body]).done).toBe(true);
  });
});

describe('MultipartModelRewriter on hand-built bodies', () => {
  const boundary = 'tollgate-test-boundary-42';

  it('rewrites the model before a file whose bytes hold CRLFs and partial delimiters', () => {
    const body = handBuilt(boundary, [
      { name: 'model', value: 'gpt-test' },
      { name: 'file', value: trickyFile(boundary), filename: 'a.wav', contentType: 'audio/wav' },
    ]);
    const expected = handBuilt(boundary, [
      { name: 'model', value: RESOLVE('gpt-test') },
      { name: 'file', value: trickyFile(boundary), filename: 'a.wav', contentType: 'audio/wav' },
    ]);
    expectRewriteForEveryChunking(boundary, body, expected, 'gpt-test');
  });

  it('rewrites the model after a file whose bytes hold CRLFs and partial delimiters', () => {
    const fields = (model: string): Field[] => [
      { name: 'file', value: trickyFile(boundary), filename: 'a.wav', contentType: 'audio/wav' },
      { name: 'prompt', value: 'name="model"' },
      { name: 'model', value: model },
      { name: 'file2', value: trickyFile(boundary), filename: 'b.wav' },
    ];
    expectRewriteForEveryChunking(
      boundary,
      handBuilt(boundary, fields('gpt-test')),
      handBuilt(boundary, fields(RESOLVE('gpt-test'))),
      'gpt-test',
    );
  });

  it('rewrites a model part that carries its own Content-Type header', () => {
    const fields = (model: string): Field[] => [
      { name: 'model', value: model, contentType: 'text/plain; charset=utf-8' },
      { name: 'file', value: Buffer.from('RIFF....WAVE'), filename: 'a.wav' },
    ];
    expectRewriteForEveryChunking(
      boundary,
      handBuilt(boundary, fields('gpt-test')),
      handBuilt(boundary, fields(RESOLVE('gpt-test'))),
      'gpt-test',
    );
  });

  it('does not take a field named like the model (model_x, filename="model") for the model', () => {
    const body = handBuilt(boundary, [
      { name: 'model_x', value: 'nope' },
      { name: 'file', value: Buffer.from('data'), filename: 'model' },
      { name: 'model', value: 'gpt-test' },
    ]);
    const expected = handBuilt(boundary, [
      { name: 'model_x', value: 'nope' },
      { name: 'file', value: Buffer.from('data'), filename: 'model' },
      { name: 'model', value: RESOLVE('gpt-test') },
    ]);
    expectRewriteForEveryChunking(boundary, body, expected, 'gpt-test');
  });

  it('handles a non-ASCII model name and a multi-byte replacement', () => {
    const resolve = () => 'modèle-amont';
    const body = handBuilt(boundary, [{ name: 'model', value: 'modèle' }]);
    const expected = handBuilt(boundary, [{ name: 'model', value: 'modèle-amont' }]);
    for (const { chunks } of twoWaySplits(body)) {
      const result = run(boundary, chunks, resolve);
      expect(result.model).toBe('modèle');
      expect(result.output.equals(expected)).toBe(true);
    }
  });

  it('keeps reading part headers after the model: a second model part is refused, not forwarded', () => {
    const rewriter = new MultipartModelRewriter(boundary, RESOLVE);
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-test\r\n--${boundary}`,
    );
    const first = rewriter.write(head);
    expect(rewriter.modelKnown).toBe(true);
    expect(rewriter.done).toBe(false);
    expect(rewriter.model).toBe('gpt-test');
    expect(first.toString('latin1')).toContain(RESOLVE('gpt-test'));
    // Upstreams differ in which of two `model` fields they read; the allowlist checked the first.
    const later = Buffer.from(
      `\r\nContent-Disposition: form-data; name="model"\r\n\r\nsecond\r\n--${boundary}--\r\n`,
    );
    expect(() => rewriter.write(later)).toThrow(/more than once/);
  });

  it('recognises the model field unquoted and in any case, and refuses encoded names', () => {
    for (const disposition of [
      'form-data; name=model',
      'form-data; NAME="model"',
      'form-data;name = "model"',
    ]) {
      const rewriter = new MultipartModelRewriter(boundary, RESOLVE);
      const body = Buffer.from(
        `--${boundary}\r\nContent-Disposition: ${disposition}\r\n\r\ngpt-test\r\n--${boundary}--\r\n`,
      );
      const out = Buffer.concat([rewriter.write(body), rewriter.end()]);
      expect(rewriter.model, disposition).toBe('gpt-test');
      expect(out.toString('latin1')).toContain(RESOLVE('gpt-test'));
    }
    const encoded = new MultipartModelRewriter(boundary, RESOLVE);
    expect(() =>
      encoded.write(
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name*=UTF-8''model\r\n\r\nx\r\n`),
      ),
    ).toThrow(/encoded form/);
  });

  it('reports no model and returns the body unchanged when the body has only other fields', () => {
    const body = handBuilt(boundary, [
      { name: 'file', value: trickyFile(boundary), filename: 'a.wav' },
      { name: 'language', value: 'en' },
    ]);
    expectRewriteForEveryChunking(boundary, body, body, undefined);
  });

  it('returns a truncated body (no closing delimiter) unchanged with no model', () => {
    const body = handBuilt(boundary, [{ name: 'file', value: trickyFile(boundary), filename: 'a.wav' }]);
    const truncated = body.subarray(0, body.length - `--${boundary}--\r\n`.length - 5);
    expectRewriteForEveryChunking(boundary, truncated, truncated, undefined);
  });

  it('is not fooled by the boundary text inside a file when it is not preceded by CRLF', () => {
    // RFC 2046: a delimiter is CRLF "--" boundary. A file may hold "--<boundary>" without the CRLF
    // (a text file quoting a multipart body, say); only a real delimiter may start a part.
    const file = Buffer.from(
      `abc--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nevil\r\nrest of file`,
    );
    const fields = (model: string): Field[] => [
      { name: 'file', value: file, filename: 'a.txt', contentType: 'text/plain' },
      { name: 'model', value: model },
    ];
    expectRewriteForEveryChunking(
      boundary,
      handBuilt(boundary, fields('gpt-test')),
      handBuilt(boundary, fields(RESOLVE('gpt-test'))),
      'gpt-test',
    );
  });
});

describe('MultipartModelRewriter errors', () => {
  const boundary = 'err-boundary';

  it('propagates what the resolver throws, from the write that completes the model', () => {
    const body = handBuilt(boundary, [
      { name: 'model', value: 'unknown-model' },
      { name: 'file', value: trickyFile(boundary), filename: 'a.wav' },
    ]);
    const failure = new Error('no such model');
    for (const { chunks } of twoWaySplits(body)) {
      const rewriter = new MultipartModelRewriter(boundary, () => {
        throw failure;
      });
      let thrown: unknown;
      try {
        for (const chunk of chunks) rewriter.write(chunk);
        rewriter.end();
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBe(failure);
      expect(rewriter.model).toBe('unknown-model');
    }
  });

  it('rejects a model value longer than any model name with a 400 on param model', () => {
    const rewriter = new MultipartModelRewriter(boundary, RESOLVE);
    rewriter.write(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n`));
    let thrown: unknown;
    try {
      for (let i = 0; i < 8; i++) rewriter.write(Buffer.alloc(512, 0x61));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(GatewayError);
    expect(thrown).toMatchObject({ status: 400, param: 'model' });
  });

  it('rejects a part header that never ends with a 400 instead of holding it forever', () => {
    const rewriter = new MultipartModelRewriter(boundary, RESOLVE);
    rewriter.write(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="`));
    let thrown: unknown;
    try {
      for (let i = 0; i < 40; i++) rewriter.write(Buffer.alloc(1024, 0x62));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(GatewayError);
    expect(thrown).toMatchObject({ status: 400 });
  });
});
