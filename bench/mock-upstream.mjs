// Mock OpenAI-compatible upstream for the benchmark. It runs in its own process so that its
// work never shares an event loop with the load generator or with the proxy under test.
//
//   POST /v1/chat/completions            fixed ~1 KB chat.completion JSON with usage
//   POST /v1/chat/completions stream:true MOCK_STREAM_CHUNKS chunks, MOCK_CHUNK_DELAY_MS apart,
//                                         a usage chunk if stream_options.include_usage, [DONE]
//   GET  /healthz, GET /v1/models         readiness and a model list
//   GET  /stats                           {"chatCompletions": n}: chat requests answered so far (the
//                                         cache section checks that hits never reached the mock)
//
// Env: PORT (9100), HOST (127.0.0.1), MOCK_STREAM_CHUNKS (20), MOCK_CHUNK_DELAY_MS (5),
//      MOCK_FIRST_CHUNK_DELAY_MS (0).
// Every response body is serialised once at startup: the mock sits behind every target, so
// the cheaper it is, the more of the measured difference belongs to the proxy in front of it.
import http from 'node:http';

const port = Number(process.env.PORT ?? 9100);
const host = process.env.HOST ?? '127.0.0.1';
const streamChunkCount = Math.max(2, Number(process.env.MOCK_STREAM_CHUNKS ?? 20));
const chunkDelayMs = Math.max(0, Number(process.env.MOCK_CHUNK_DELAY_MS ?? 5));
// 0 by default so that time-to-first-chunk measures the proxies, not a simulated prefill.
const firstChunkDelayMs = Math.max(0, Number(process.env.MOCK_FIRST_CHUNK_DELAY_MS ?? 0));

const MODEL = 'bench-model';
const CREATED = Math.floor(Date.now() / 1000);
const COMPLETION_ID = 'chatcmpl-bench0000000000000000000001';
const SYSTEM_FINGERPRINT = 'fp_bench';
const USAGE = {
  prompt_tokens: 24,
  completion_tokens: 160,
  total_tokens: 184,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: 0,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0,
  },
};
const ANSWER =
  'Tollgate is a gateway in front of language model backends. This answer is deliberately long ' +
  'enough to make the whole response about one kilobyte, which is a typical size for a short ' +
  'chat completion: a few sentences of text plus the envelope of ids, the model name, the finish ' +
  'reason and the token usage. The exact words do not matter to the benchmark; the size and the ' +
  'shape do, because they decide how much the proxy has to read, parse, copy and write for each ' +
  'request it relays to the client.';

/** @param {unknown} value @returns {Buffer} */
const jsonBuffer = (value) => Buffer.from(JSON.stringify(value));

const completionBody = jsonBuffer({
  id: COMPLETION_ID,
  object: 'chat.completion',
  created: CREATED,
  model: MODEL,
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: ANSWER, refusal: null, annotations: [] },
      logprobs: null,
      finish_reason: 'stop',
    },
  ],
  usage: USAGE,
  service_tier: 'default',
  system_fingerprint: SYSTEM_FINGERPRINT,
});

/**
 * One SSE event per chunk: the first carries the role, the last the finish_reason, the ones in
 * between a word each. OpenAI adds `usage: null` to every chunk when usage was requested, so
 * two variants are prepared.
 * @param {boolean} withUsageField
 * @returns {Buffer[]}
 */
function buildStreamChunks(withUsageField) {
  const words = ANSWER.split(' ');
  /** @type {Buffer[]} */
  const events = [];
  for (let index = 0; index < streamChunkCount; index += 1) {
    const isFirst = index === 0;
    const isLast = index === streamChunkCount - 1;
    const delta = isFirst
      ? { role: 'assistant', content: '', refusal: null }
      : isLast
        ? {}
        : { content: `${words[(index - 1) % words.length]} ` };
    const chunk = {
      id: COMPLETION_ID,
      object: 'chat.completion.chunk',
      created: CREATED,
      model: MODEL,
      service_tier: 'default',
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: isLast ? 'stop' : null }],
      ...(withUsageField ? { usage: null } : {}),
    };
    events.push(Buffer.from(`data: ${JSON.stringify(chunk)}\n\n`));
  }
  return events;
}

const streamChunksPlain = buildStreamChunks(false);
const streamChunksWithUsageField = buildStreamChunks(true);
const usageEvent = Buffer.from(
  `data: ${JSON.stringify({
    id: COMPLETION_ID,
    object: 'chat.completion.chunk',
    created: CREATED,
    model: MODEL,
    service_tier: 'default',
    system_fingerprint: SYSTEM_FINGERPRINT,
    choices: [],
    usage: USAGE,
  })}\n\n`,
);
const doneEvent = Buffer.from('data: [DONE]\n\n');
const healthBody = jsonBuffer({ status: 'ok' });
const modelsBody = jsonBuffer({
  object: 'list',
  data: [{ id: MODEL, object: 'model', created: CREATED, owned_by: 'bench' }],
});

/**
 * @param {http.ServerResponse} res
 * @param {number} status
 * @param {Buffer} body
 */
function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

/**
 * @param {http.ServerResponse} res
 * @param {number} status
 * @param {string} message
 * @param {string} code
 */
function sendError(res, status, message, code) {
  sendJson(res, status, jsonBuffer({ error: { message, type: 'invalid_request_error', param: null, code } }));
}

/**
 * @param {http.ServerResponse} res
 * @param {boolean} includeUsage
 */
function sendStream(res, includeUsage) {
  const chunks = includeUsage ? streamChunksWithUsageField : streamChunksPlain;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  let nextIndex = 0;
  // A client (or proxy) that goes away must stop the timer chain, like a real upstream would.
  res.on('close', () => clearTimeout(timer));
  const writeNext = () => {
    if (res.destroyed) return;
    const chunk = chunks[nextIndex];
    if (chunk === undefined) {
      if (includeUsage) res.write(usageEvent);
      res.end(doneEvent);
      return;
    }
    res.write(chunk);
    nextIndex += 1;
    timer = setTimeout(writeNext, chunkDelayMs);
  };
  if (firstChunkDelayMs > 0) timer = setTimeout(writeNext, firstChunkDelayMs);
  else writeNext();
}

/**
 * @param {http.ServerResponse} res
 * @param {Buffer} rawBody
 */
function handleChatCompletions(res, rawBody) {
  /** @type {unknown} */
  let parsed;
  try {
    parsed = JSON.parse(rawBody.toString('utf8'));
  } catch {
    sendError(res, 400, 'We could not parse the JSON body of your request.', 'invalid_json');
    return;
  }
  if (typeof parsed !== 'object' || parsed === null) {
    sendError(res, 400, 'The body must be a JSON object.', 'invalid_json');
    return;
  }
  const request = /** @type {{ stream?: unknown, stream_options?: { include_usage?: unknown } }} */ (parsed);
  if (request.stream === true) {
    sendStream(res, request.stream_options?.include_usage === true);
    return;
  }
  sendJson(res, 200, completionBody);
}

/** POST /v1/chat/completions requests received (stream or not). */
let chatCompletions = 0;

const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
  if (req.method === 'GET' && (path === '/healthz' || path === '/health')) {
    sendJson(res, 200, healthBody);
    return;
  }
  if (req.method === 'GET' && path === '/stats') {
    sendJson(res, 200, jsonBuffer({ chatCompletions }));
    return;
  }
  if (req.method === 'GET' && path.endsWith('/models')) {
    sendJson(res, 200, modelsBody);
    return;
  }
  if (req.method === 'POST' && path.endsWith('/chat/completions')) {
    chatCompletions += 1;
    /** @type {Buffer[]} */
    const parts = [];
    req.on('data', (part) => parts.push(part));
    req.on('end', () => handleChatCompletions(res, Buffer.concat(parts)));
    return;
  }
  sendError(res, 404, `No route for ${req.method} ${path}`, 'not_found');
});

server.listen(port, host, () => {
  const address = server.address();
  const boundPort = typeof address === 'object' && address !== null ? address.port : port;
  process.stdout.write(
    `${JSON.stringify({
      msg: 'mock-upstream listening',
      port: boundPort,
      completionBytes: completionBody.length,
      streamChunks: streamChunkCount,
      chunkDelayMs,
      firstChunkDelayMs,
    })}\n`,
  );
});

for (const signal of /** @type {const} */ (['SIGTERM', 'SIGINT'])) {
  process.on(signal, () => process.exit(0));
}
