import fc from 'fast-check';

/**
 * Building blocks for the endpoint fuzzer: hostile JSON values, header and query garbage,
 * broken encodings of a body and multipart uploads. Requests are assembled per route in
 * fuzz-requests.ts.
 */

/** Embedded in every free-form header value, so an upstream that receives one is caught. */
export const HEADER_MARK = 'FUZZMARK';

/**
 * Fuzzed strings are echoed back by design (the mock model echoes prompts, errors name the
 * model). Text that looks like a stack frame or a source path would then be a false "leak";
 * defanging it keeps the no-internals property about the gateway, not about our input.
 */
export function defang(text: string): string {
  return text
    .replace(/src/gi, 's_c')
    .replace(/node_modules/gi, 'node-mods')
    .replace(/\.ts/gi, '._s')
    .replace(/\bat\b/gi, 'a_');
}

/** Applies `defang` to every string and key of a JSON value. */
export function defangDeep(value: unknown): unknown {
  if (typeof value === 'string') return defang(value);
  if (Array.isArray(value)) return value.map(defangDeep);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      Object.defineProperty(out, defang(key), {
        value: defangDeep(inner),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

/** Numbers at the edges of what JSON, doubles, int32/int64 and the quota arithmetic can hold. */
export const edgeNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(
    0,
    -0,
    -1,
    1,
    0.5,
    -0.5,
    2,
    16,
    128,
    4_096,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 32,
    2 ** 46,
    2 ** 53 - 1,
    2 ** 53,
    2 ** 53 + 2,
    1e20,
    1e308,
    -1e308,
    Number.MIN_VALUE,
    Number.MAX_VALUE,
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Strings a careless `Number()` or `parseInt()` turns into something surprising. */
export const numberLikeString: fc.Arbitrary<string> = fc.constantFrom(
  'NaN',
  'Infinity',
  '-Infinity',
  '1e999',
  '-1',
  '0x10',
  '1_000',
  '',
  ' ',
  '  12  ',
  'null',
  'true',
  'undefined',
  '9007199254740993',
  '1.5',
  '__proto__',
  'constructor',
);

/** Up to ~24k characters of one repeated piece (large, but far under the body limit in bytes). */
export const longText: fc.Arbitrary<string> = fc
  .tuple(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }), fc.integer({ min: 1_000, max: 24_000 }))
  .map(([piece, length]) => defang(piece.repeat(Math.ceil(length / piece.length)).slice(0, length)));

/** Short text of every kind: ASCII, any Unicode grapheme, lone surrogates and control characters. */
export const shortText: fc.Arbitrary<string> = fc
  .oneof(
    fc.string({ maxLength: 24 }),
    fc.string({ unit: 'grapheme', maxLength: 24 }),
    fc.string({ unit: 'binary', maxLength: 24 }),
    fc.constantFrom('\u0000', '\ud800', '\udfff', '\u202e', '\ufeff', 'é', '😀', '\r\n', '\\', '"', '%00'),
  )
  .map(defang);

export const text: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: shortText },
  { weight: 1, arbitrary: longText },
);

/** Nesting far deeper than any OpenAI field, yet small in bytes. */
export const deepNesting: fc.Arbitrary<unknown> = fc
  .tuple(fc.integer({ min: 16, max: 512 }), fc.boolean())
  .map(([depth, arrays]) => {
    let value: unknown = 'bottom';
    for (let i = 0; i < depth; i++) value = arrays ? [value] : { nested: value };
    return value;
  });

/** Any value a field might be sent instead of the one it expects. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  edgeNumber,
  numberLikeString,
  text,
  fc.boolean(),
  fc.constant(null),
  fc.constant({}),
  fc.constant([]),
  fc.jsonValue({ maxDepth: 3 }).map(defangDeep),
  deepNesting,
);

/** Mostly the plausible value, now and then anything at all (nested fields; see bodyOf for the top). */
export function field<T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 12, arbitrary: plausible }, { weight: 1, arbitrary: hostileValue });
}

/** Fields no endpoint knows, added to a body (forwarded untouched, or refused, never a crash). */
export const extraFields: fc.Arbitrary<Record<string, unknown>> = fc
  .dictionary(fc.string({ minLength: 1, maxLength: 12 }).map(defang), hostileValue, { maxKeys: 3 })
  .map((fields) => defangDeep(fields) as Record<string, unknown>);

/**
 * The serialised body: usually exact JSON, sometimes broken on the way (cut short, trailing
 * garbage, a byte-order mark, a duplicated or prototype-polluting key, not JSON at all).
 */
export function jsonText(value: unknown): fc.Arbitrary<string> {
  const exact = JSON.stringify(value) ?? 'null';
  const isObject = exact.startsWith('{') && exact.length > 2;
  return fc.oneof(
    { weight: 30, arbitrary: fc.constant(exact) },
    { weight: 1, arbitrary: fc.nat({ max: exact.length }).map((cut) => exact.slice(0, cut)) },
    { weight: 1, arbitrary: shortText.map((tail) => `${exact}${tail}`) },
    { weight: 1, arbitrary: fc.constant(`\ufeff${exact}`) },
    {
      weight: 1,
      arbitrary: isObject
        ? fc
            .constantFrom('"model":1,', '"__proto__":{"polluted":true},', '"constructor":{"prototype":{}},')
            .map((inserted) => `{${inserted}${exact.slice(1)}`)
        : fc.constant(exact),
    },
    { weight: 1, arbitrary: shortText },
  );
}

/** What a client may claim its body is. */
export const jsonContentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 12, arbitrary: fc.constant('application/json') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      undefined,
      'application/json; charset=utf-8',
      'application/json; charset=utf-16',
      'application/json; charset=latin1',
      'APPLICATION/JSON',
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/octet-stream',
      'multipart/form-data; boundary=xyz',
      'text/event-stream',
      'application/xml',
      'a/b',
      'garbage',
      '',
      'application/json, text/plain',
    ),
  },
);

/** Header values a client can put on the wire (visible ASCII and obs-text, no CR/LF). */
export const headerText: fc.Arbitrary<string> = fc
  .string({ unit: 'binary', maxLength: 40 })
  .map((value) => defang(value.replace(/[^\x20-\x7e\x80-\xff]/g, '')).trim());

/** Headers the gateway reads (controls) or must never pass on (everything else a client sends). */
export const fuzzHeaders: fc.Arbitrary<Record<string, string>> = fc
  .record(
    {
      'x-tollgate-cache': fc.oneof(
        fc.constantFrom('on', 'off', 'refresh', 'ON', ' on ', 'bypass', '', 'on, off'),
        headerText,
      ),
      'x-tollgate-cache-ttl': fc.oneof(
        fc.constantFrom('1', '0', '-1', '60', '1e9', '9007199254740993', 'NaN', 'abc', ''),
        headerText,
      ),
      'x-tollgate-tags': fc.oneof(fc.constantFrom('a,b', 'x'.repeat(300), ',,,', 'é'), headerText),
      'x-tollgate-backend': headerText,
      'cache-control': fc.oneof(
        fc.constantFrom(
          'no-cache',
          'no-store',
          'max-age=0',
          'max-age=-1',
          'max-age=99999999999',
          'only-if-cached',
        ),
        headerText,
      ),
      'x-request-id': fc.oneof(
        fc.constantFrom('req-fuzz-1', '', ' ', 'a b', 'x'.repeat(200), '../../etc/passwd', 'id\u00e9'),
        headerText.map((value) => `${HEADER_MARK}${value}`),
      ),
      'x-forwarded-for': fc.constantFrom('1.2.3.4', 'garbage', '127.0.0.1, 10.0.0.1'),
      'x-stainless-retry-count': fc.constantFrom('0', '1', 'abc'),
      'openai-organization': headerText.map((value) => `${HEADER_MARK}${value}`),
      'openai-project': headerText.map((value) => `${HEADER_MARK}${value}`),
      'openai-beta': headerText.map((value) => `${HEADER_MARK}${value}`),
      cookie: headerText.map((value) => `session=${HEADER_MARK}${value}`),
      accept: fc.constantFrom('*/*', 'text/event-stream', 'application/json', 'image/png', ''),
      'accept-encoding': fc.constantFrom('gzip', 'br', 'identity', '*'),
      'content-encoding': fc.constantFrom('gzip', 'identity', 'x-unknown'),
      'user-agent': headerText.map((value) => `${HEADER_MARK}${value}`),
      origin: fc.constantFrom('https://example.com', 'null', 'http://127.0.0.1:1'),
      'x-fuzz-custom': headerText.map((value) => `${HEADER_MARK}${value}`),
    },
    { requiredKeys: [] },
  )
  .map((headers) => Object.fromEntries(Object.entries(headers).filter(([, value]) => value !== undefined)));

/** Percent-encodes UTF-8 bytes (lone surrogates become U+FFFD, as on the wire); `keep` stays raw. */
export function percentEncode(value: string, keep: RegExp = /[A-Za-z0-9\-._~]/): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += byte < 0x80 && keep.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Every query parameter name some route reads, plus a few that none does. */
export const QUERY_NAMES = [
  'limit',
  'after',
  'before',
  'team_id',
  'key_id',
  'from',
  'to',
  'group_by',
  'model',
  'scope',
  'all',
  'force',
  'api-version',
  '__proto__',
  'limit[]',
] as const;

/** Dates as `from`/`to` take them: real, impossible, out of range, reversed, not dates. */
const dateLike = fc.oneof(
  fc.constantFrom('2024-01-01', '2024-02-29', '2023-02-29', '2024-02-30', '2024-13-45', '0000-00-00'),
  fc.constantFrom('0001-01-01', '9999-12-31', '275760-09-13', '1970-01-01', '2024-1-1', 'yesterday', ''),
  fc
    .tuple(
      fc.integer({ min: 0, max: 9_999 }),
      fc.integer({ min: 0, max: 99 }),
      fc.integer({ min: 0, max: 99 }),
    )
    .map(
      ([y, m, d]) =>
        `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`,
    ),
);

/**
 * Query strings over `names` (a route's own parameters, so its parser is reached), with
 * hostile values, sometimes a name nobody reads.
 */
export function queryFor(names: readonly string[]): fc.Arbitrary<string> {
  return fc
    .array(
      fc.tuple(
        fc.oneof(
          { weight: 4, arbitrary: fc.constantFrom(...names) },
          { weight: 1, arbitrary: fc.constantFrom(...QUERY_NAMES) },
          { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 8 }).map(defang) },
        ),
        fc.oneof(
          fc.constantFrom(
            '1',
            '0',
            '-1',
            '100',
            '101',
            '1e9',
            'true',
            'false',
            'global',
            'team',
            'key',
            'model',
            'day',
          ),
          dateLike,
          numberLikeString,
          shortText,
        ),
        fc.boolean(),
      ),
      { maxLength: 4 },
    )
    .map((pairs) =>
      pairs
        .map(([name, value, encoded]) =>
          encoded
            ? `${percentEncode(name)}=${percentEncode(value)}`
            : // Raw but wire-legal: percent signs and separators stay as typed.
              percentEncode(`${name}=${value}`, /[\x21-\x7e]/),
        )
        .join('&'),
    );
}

export const fuzzQuery: fc.Arbitrary<string> = queryFor(QUERY_NAMES);

/** A path segment standing for a client-chosen id or name. */
export function pathSegment(known: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...known) },
    { weight: 2, arbitrary: shortText.filter((s) => s.length > 0).map((s) => percentEncode(s)) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '..',
        '.',
        '%2e%2e',
        '%2E',
        '%2F',
        'a%2Fb',
        '%00',
        '%ZZ',
        '%',
        'x'.repeat(600),
        '%252e%252e',
        '~',
        'tg_key_0',
      ),
    },
  );
}

/** Multipart bodies: valid uploads, near misses and garbage. */
export interface MultipartBody {
  contentType: string | undefined;
  body: Buffer;
}

const partName = fc.oneof(
  fc.constantFrom(
    'model',
    'file',
    'language',
    'prompt',
    'response_format',
    'temperature',
    'timestamp_granularities[]',
  ),
  fc.string({ maxLength: 10 }).map(defang),
);

const partData: fc.Arbitrary<Buffer> = fc.oneof(
  shortText.map((value) => Buffer.from(value)),
  fc.uint8Array({ maxLength: 4_096 }).map((bytes) => Buffer.from(bytes)),
  fc.constantFrom(Buffer.from('--fuzzboundary\r\n'), Buffer.from('\r\n\r\n'), Buffer.alloc(0)),
);

export function multipartBody(models: readonly string[]): fc.Arbitrary<MultipartBody> {
  const part = fc.record({
    name: partName,
    filename: fc.option(fc.constantFrom('a.wav', 'x.mp3', '../../etc/passwd', 'é"quoted".ogg', ''), {
      nil: undefined,
    }),
    type: fc.option(fc.constantFrom('audio/wav', 'application/octet-stream', 'text/plain', 'x'), {
      nil: undefined,
    }),
    data: partData,
  });
  const modelPart = fc.oneof(fc.constantFrom(...models), shortText).map((model) => ({
    name: 'model',
    filename: undefined,
    type: undefined,
    data: Buffer.from(model),
  }));
  const boundary = fc.oneof(
    { weight: 3, arbitrary: fc.constant('fuzzboundary') },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9'()+_,\-./:=?]{1,70}$/) },
  );
  return fc
    .record({
      boundary,
      parts: fc.array(part, { maxLength: 4 }),
      model: fc.option(modelPart, { nil: undefined }),
      modelFirst: fc.boolean(),
      header: fc.constantFrom('exact', 'exact', 'exact', 'quoted', 'missing', 'other', 'none', 'wrong-type'),
      ending: fc.constantFrom('closed', 'closed', 'closed', 'open', 'cut', 'no-crlf'),
      cut: fc.nat(),
    })
    .map(({ boundary, parts, model, modelFirst, header, ending, cut }) => {
      const all = model ? (modelFirst ? [model, ...parts] : [...parts, model]) : parts;
      const pieces: Buffer[] = [];
      for (const p of all) {
        const disposition = `form-data; name="${p.name}"${p.filename === undefined ? '' : `; filename="${p.filename}"`}`;
        const head = `--${boundary}\r\nContent-Disposition: ${disposition}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`;
        pieces.push(Buffer.from(head, 'latin1'), p.data, Buffer.from('\r\n'));
      }
      if (ending !== 'open') pieces.push(Buffer.from(`--${boundary}--${ending === 'no-crlf' ? '' : '\r\n'}`));
      let body = Buffer.concat(pieces);
      if (ending === 'cut' && body.length > 0) body = body.subarray(0, cut % body.length);
      const contentType = {
        exact: `multipart/form-data; boundary=${boundary}`,
        quoted: `multipart/form-data; boundary="${boundary}"`,
        missing: 'multipart/form-data',
        other: 'multipart/form-data; boundary=not-the-one',
        none: undefined,
        'wrong-type': 'application/json',
      }[header];
      return { contentType, body };
    });
}
