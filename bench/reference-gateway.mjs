// A reference point between the floor and Tollgate: the least a gateway on our stack (fastify 5,
// pino, zod, undici) does for one chat completion, and nothing else. It parses the JSON body,
// checks a hashed team key, validates the fields it reads with zod, rewrites the model name,
// forwards with undici, parses the upstream's answer for its usage and writes one pino line per
// request. No quotas, cache, routing, CORS, metrics or usage records. See BENCHMARKS.md.
// Env: UPSTREAM_URL (origin, default http://127.0.0.1:9100), PORT (9200), HOST (127.0.0.1),
//      REFERENCE_KEY (the one accepted bearer key; default sk-reference),
//      REFERENCE_STEPS: all (default) | fastify (fastify relays the bytes both ways: no JSON, key,
//      zod or log line), to tell the framework's share from the work's.
import { createHash } from 'node:crypto';
import Fastify, { LogController } from 'fastify';
import { pino } from 'pino';
import { Pool } from 'undici';
import { z } from 'zod';

const upstream = new Pool(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:9100', { keepAliveTimeout: 60_000 });
const sha256 = (text) => createHash('sha256').update(text).digest('hex');
const keys = new Map([[sha256(process.env.REFERENCE_KEY ?? 'sk-reference'), { team: 'reference' }]]);
const chatRequest = z.looseObject({
  model: z.string().min(1),
  messages: z.array(z.unknown()).min(1),
  stream: z.boolean().optional(),
  max_tokens: z.number().int().positive().optional(),
});
const logger = pino({ level: 'info' }, pino.destination({ dest: 1, minLength: 4096, sync: false }));
const app = Fastify({
  loggerInstance: logger,
  logController: new LogController({ disableRequestLogging: true }),
});
const openAiError = (reply, status, message, type) =>
  reply.code(status).send({ error: { message, type, param: null, code: null } });

app.get('/healthz', async () => ({ status: 'ok' }));

const relayOnly = process.env.REFERENCE_STEPS === 'fastify';
if (relayOnly) {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
}

app.post('/v1/chat/completions', async (request, reply) => {
  if (relayOnly) {
    const answer = await upstream.request({
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-reference-upstream' },
      body: request.body,
    });
    return reply
      .code(answer.statusCode)
      .type('application/json')
      .send(Buffer.from(await answer.body.arrayBuffer()));
  }
  const header = request.headers.authorization ?? '';
  const principal = header.startsWith('Bearer ') ? keys.get(sha256(header.slice(7))) : undefined;
  if (principal === undefined) return openAiError(reply, 401, 'Invalid API key.', 'invalid_request_error');
  const parsed = chatRequest.safeParse(request.body);
  if (!parsed.success) return openAiError(reply, 400, parsed.error.message, 'invalid_request_error');
  if (parsed.data.stream === true)
    return openAiError(reply, 400, 'Streaming is not measured here.', 'invalid_request_error');
  const started = performance.now();
  const answer = await upstream.request({
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-reference-upstream' },
    body: JSON.stringify({ ...request.body, model: parsed.data.model }),
  });
  const text = await answer.body.text();
  let usage = null;
  try {
    usage = JSON.parse(text).usage ?? null;
  } catch {}
  logger.info({
    request_id: request.id,
    team: principal.team,
    model: parsed.data.model,
    status: answer.statusCode,
    upstream_ms: performance.now() - started,
    prompt_tokens: usage?.prompt_tokens,
    completion_tokens: usage?.completion_tokens,
  });
  return reply.code(answer.statusCode).type('application/json').send(text);
});

const address = await app.listen({
  port: Number(process.env.PORT ?? 9200),
  host: process.env.HOST ?? '127.0.0.1',
});
// Unbuffered, unlike the pino lines: with PORT=0 whoever started us learns the port from here.
process.stderr.write(`reference gateway listening on ${address}\n`);
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
