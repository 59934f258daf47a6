// Section 9's HTTP floor: the least server in front of node-llama-cpp, so the gateway's overhead
// can be told apart from what any HTTP hop in front of an in-process model costs on this machine.
// node:http, no framework, no auth, no validation beyond reading the fields it uses; per request
// it does what lib/llama-direct.mjs does (lib/llama-library.mjs), and answers as the OpenAI API
// does: JSON with usage, or with `stream: true` one SSE event per token, a usage event and
// [DONE]. One request at a time (section 9's client sends them one by one); a second one waits.
//
// Env: PORT (0: any free port), HOST (127.0.0.1), MODEL_PATH, THREADS, CONTEXT_SIZE. Listens once
// the model is loaded, then says `listening on <origin>` on stderr; GET /healthz answers 200.
import { createServer } from 'node:http';
import { loadLlama } from './llama-library.mjs';

const loaded = await loadLlama({
  modelPath: String(process.env.MODEL_PATH),
  threads: Number(process.env.THREADS ?? 1),
  contextSize: Number(process.env.CONTEXT_SIZE ?? 4096),
  messages: [],
});
if ('unavailable' in loaded) {
  process.stderr.write(`${loaded.unavailable}\n`);
  process.exit(1);
}
const { answer } = loaded;
const MODEL = 'tiny';
/** The sequence serves one answer at a time. */
let busy = Promise.resolve();

/**
 * @param {import('node:http').IncomingMessage} req
 * @returns {Promise<string>}
 */
async function readBody(req) {
  /** @type {Buffer[]} */
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * @param {number} promptTokens
 * @param {number} completionTokens
 */
const usageOf = (promptTokens, completionTokens) => ({
  prompt_tokens: promptTokens,
  completion_tokens: completionTokens,
  total_tokens: promptTokens + completionTokens,
});

/**
 * @param {{ messages: Array<{ role: string, content: string }>, max_tokens?: number, stream?: boolean }} body
 * @param {import('node:http').ServerResponse} res
 */
async function chat(body, res) {
  const maxTokens = body.max_tokens ?? 16;
  const id = `chatcmpl-${Date.now()}`;
  const created = Math.floor(Date.now() / 1000);
  if (!body.stream) {
    const result = await answer(maxTokens, { messages: body.messages });
    const json = JSON.stringify({
      id,
      object: 'chat.completion',
      created,
      model: MODEL,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: result.text },
          finish_reason: result.tokens >= maxTokens ? 'length' : 'stop',
        },
      ],
      usage: usageOf(result.promptTokens, result.tokens),
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
    res.end(json);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const event = (/** @type {object} */ data) => `data: ${JSON.stringify(data)}\n\n`;
  const chunk = (/** @type {object} */ delta, /** @type {string | null} */ finish) =>
    event({
      id,
      object: 'chat.completion.chunk',
      created,
      model: MODEL,
      choices: [{ index: 0, delta, finish_reason: finish }],
    });
  res.write(chunk({ role: 'assistant', content: '' }, null));
  const result = await answer(maxTokens, {
    messages: body.messages,
    onText: (text) => res.write(chunk({ content: text }, null)),
  });
  res.write(chunk({}, result.tokens >= maxTokens ? 'length' : 'stop'));
  res.write(
    event({
      id,
      object: 'chat.completion.chunk',
      created,
      model: MODEL,
      choices: [],
      usage: usageOf(result.promptTokens, result.tokens),
    }),
  );
  res.end('data: [DONE]\n\n');
}

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.end('ok');
    return;
  }
  if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
    res.writeHead(404).end();
    return;
  }
  const done = busy.then(async () => {
    try {
      await chat(JSON.parse(await readBody(req)), res);
    } catch (error) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: String(error), type: 'server_error' } }));
    }
  });
  busy = done;
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const address = server.address();
  if (address && typeof address === 'object')
    process.stderr.write(`listening on http://${address.address}:${address.port}\n`);
});
// Stopped by the bench with SIGTERM: exit normally (so `--cpu-prof` and the like write out).
process.once('SIGTERM', () => process.exit(0));
