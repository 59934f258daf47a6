import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { DestinationStream, Logger } from 'pino';
import { AdminKey } from './admin/admin-key.js';
import type { UploadEndpoint } from './backends/backend.js';
import { BackendRegistry } from './backends/registry.js';
import type { Config } from './config/schema.js';
import { InvalidRequestError, RequestTooLargeError } from './errors.js';
import { lingerAfterAnswer } from './http/lingering-close.js';
import { createLogger } from './http/logger.js';
import { PendingWork } from './http/pending-work.js';
import { ReadinessProbe } from './http/readiness-probe.js';
import { createGatewayContext, processingMs } from './http/request-context.js';
import { logRequest } from './http/request-log.js';
import { assertModelAllowed, authHook, KeyAuthenticator } from './pipeline/auth.js';
import { type CacheRole, CacheStage } from './pipeline/cache.js';
import { CacheAnswers } from './pipeline/cache-answers.js';
import {
  clientWantsUsageChunk,
  dispatchJson,
  dispatchUpload,
  type JsonDispatch,
} from './pipeline/dispatch.js';
import { ensureBase64Embeddings } from './pipeline/embedding-encoding.js';
import { FailedAuthLimiter } from './pipeline/failed-auth-limiter.js';
import type { InferencePipeline } from './pipeline/pipeline.js';
import { QuotaStage, type QuotaTicket, tokenRateHeaders } from './pipeline/quota.js';
import { RequestLimits } from './pipeline/request-limits.js';
import { type Deployment, ModelRouter } from './pipeline/router.js';
import { collectBody, isEventStream, relaySse, sendBuffered, sendStreamed } from './pipeline/stream.js';
import { openUpload, UploadSource } from './pipeline/upload-body.js';
import { usageFromJson } from './pipeline/usage.js';
import { answerClientError, errorPayload, registerErrorHandler } from './plugins/error-handler.js';
import { Metrics } from './plugins/metrics.js';
import { Registry } from './registry/registry.js';
import { adminRoutes } from './routes/admin/admin-routes.js';
import { healthRoutes } from './routes/health.js';
import { inferenceRoutes } from './routes/v1/inference.js';
import { modelRoutes } from './routes/v1/models.js';
import { ownKeyRoutes } from './routes/v1/own-key.js';
import { uploadRoutes } from './routes/v1/uploads.js';
import { createStore } from './store/create-store.js';
import { redisRateLimitStore } from './store/redis-rate-limit-store.js';
import { RedisStore } from './store/redis-store.js';
import type { Store } from './store/store.js';
import { completionTokensOfJson, estimatedUsage, StreamTally } from './usage/output-tally.js';
import { estimatePromptTokens } from './usage/token-estimate.js';
import { UsageRecorder } from './usage/usage-recorder.js';

/*
 * The request pipeline, in order. Every /v1 request passes these stages; this file is the
 * one place that wires them, one stage per file under pipeline/.
 *
 *   ① auth     pipeline/auth.ts      onRequest hook on /v1, before the body is read
 *   ② quota    pipeline/quota.ts     tokens, concurrency, budgets: one atomic reservation
 *   ③ cache    pipeline/cache.ts     hit, join a request in flight, or lead the fill (answers sent
 *                                    by pipeline/cache-answers.ts)
 *   ④ router   pipeline/router.ts    public model name -> deployment
 *   ⑤ backend  pipeline/dispatch.ts  one call to the deployment's adapter
 *   ⑥ stream   pipeline/stream.ts    SSE relayed as it arrives, or JSON / bytes
 *   ⑦ usage    pipeline/usage.ts     token usage read from the answer (request.gateway.usage)
 *
 * ② is split around ③: request rates are counted before the cache (a hit is still a request),
 * the token / concurrency / budget reservation after it (a hit spends none). ④ resolves the
 * model before both, since the cache key and the prices depend on the deployment.
 */

export interface AppDeps {
  /** Where logs go (tests capture them); defaults to stdout. */
  logDestination?: DestinationStream;
  logger?: Logger;
  registry?: BackendRegistry;
  store?: Store;
  /** Told the plaintext admin key when this start generated one (server.ts prints it once). */
  onAdminKeyGenerated?: (key: string) => void;
  /**
   * Wall-clock time for quota periods, minute windows and usage records (tests move it across
   * a day or month). Request-rate windows are @fastify/rate-limit's own and use the real clock.
   */
  clock?: () => number;
}

const GATEWAY_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** Non-streamed answers are read whole (usage, base64 fixes); past this an upstream is misbehaving. */
const MAX_UPSTREAM_JSON_BYTES = 256 * 1024 * 1024;

/** Last-used times are written in batches this often, never on a request's path. */
const LAST_USED_FLUSH_MS = 5_000;

/** Incoming ids we keep: short, printable, no spaces (they end up in logs and headers). */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const EXPOSED_HEADERS = [
  'x-request-id',
  'openai-processing-ms',
  'x-tollgate-backend',
  'x-tollgate-cache',
  'age',
  'retry-after',
  'retry-after-ms',
  'x-should-retry',
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
];

function requestId(request: IncomingMessage): string {
  const incoming = request.headers['x-request-id'];
  if (typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming)) return incoming;
  return `req_${randomUUID().replaceAll('-', '')}`;
}

export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const logger: FastifyBaseLogger = deps.logger ?? createLogger(config.log, deps.logDestination).logger;
  const backends = deps.registry ?? BackendRegistry.fromConfig(config);
  const store = deps.store ?? (await createStore(config));
  const registry = new Registry(store);
  const { adminKey, generated } = await AdminKey.init(config.admin.key, store);
  if (generated) deps.onAdminKeyGenerated?.(generated);
  const authenticator =
    config.auth === 'none' ? undefined : new KeyAuthenticator(store, config.auth, adminKey);
  const clock = deps.clock ?? Date.now;
  const quota = new QuotaStage(store, config.quota, clock);
  const cache = new CacheStage(store.cache, config.cache, config.models, logger, clock);
  const metrics = new Metrics();
  const usageRecorder = new UsageRecorder(store, config.quota.prices, logger, clock);
  const openRequests = new PendingWork();
  const router = new ModelRouter(config, backends);
  const readiness = new ReadinessProbe(store, backends, config.readiness);
  const relayOptions = { keepAliveMs: config.server.keepAliveIntervalMs, bodyLimit: config.server.bodyLimit };
  const cacheAnswers = new CacheAnswers({
    cache,
    quota,
    relay: relayOptions,
    hitsSpendBudget: config.cache.hitsSpendBudget,
    maxJsonBytes: MAX_UPSTREAM_JSON_BYTES,
  });

  const app = Fastify({
    loggerInstance: logger,
    // One line per request is written by our own hook, with the gateway's fields.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }),
    bodyLimit: config.server.bodyLimit,
    trustProxy: config.server.trustProxy,
    genReqId: requestId,
    return503OnClosing: false,
    // Requests the router rejects before any hook (a malformed URL) get the envelope too.
    frameworkErrors: (error, request, reply) => {
      const payload = errorPayload(
        error.code === 'FST_ERR_BAD_URL' ? new InvalidRequestError('The request URL is malformed.') : error,
        config.server.bodyLimit,
        request.headers['content-type'],
      );
      (reply as FastifyReply)
        .code(payload.status)
        .header('x-request-id', request.id)
        .headers(payload.headers)
        .type('application/json')
        .send(payload.body);
    },
    routerOptions: { ignoreTrailingSlash: true },
    // Bytes node:http cannot parse, and HTTP/1.1 without Host, get the envelope too (its own
    // answers to both are Fastify's JSON shape or an empty 400).
    clientErrorHandler: answerClientError,
    http: { requireHostHeader: false },
  });

  app.decorateRequest('gateway', undefined as never);
  app.addHook('onRequest', (request, reply, done) => {
    request.gateway = createGatewayContext(request, reply, openRequests, (ended, endedReply) => {
      logRequest(ended, endedReply);
      metrics.observe(ended, endedReply);
      usageRecorder.record(ended, endedReply); // ⑦
    });
    const headers = request.headers;
    if (
      headers['content-type'] === undefined &&
      (Number(headers['content-length']) > 0 || headers['transfer-encoding'])
    ) {
      // `curl --data-binary @body.json` and some scripts send JSON with no Content-Type at all.
      headers['content-type'] = 'application/json';
    }
    reply.header('x-request-id', request.id);
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('openai-processing-ms', processingMs(request));
    done(null, payload);
  });
  app.addHook('onError', (request, _reply, error, done) => {
    if (request.gateway) request.gateway.failure = error;
    done();
  });

  // curl's `-d` says form-urlencoded; people mean JSON. Read such bodies as JSON.
  const jsonParser = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser(
    ['application/x-www-form-urlencoded', 'text/plain'],
    { parseAs: 'string' },
    jsonParser,
  );

  // Before CORS: its hook would answer an OPTIONS that is no preflight in plain text first.
  registerErrorHandler(app, config.server.bodyLimit);
  await app.register(cors, {
    origin: config.server.cors.origins === '*' ? '*' : [...config.server.cors.origins],
    methods: ['GET', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
    // Allowed request headers mirror the preflight's list, so X-Stainless-* and friends pass.
    exposedHeaders: EXPOSED_HEADERS,
    maxAge: 600,
  });

  // Request rates and failed authentications per client IP, counted where all instances see
  // them: in Redis each limiter's counters are `tg:rate:<its own key>`.
  await app.register(rateLimit, {
    global: false,
    ...(store instanceof RedisStore
      ? { store: redisRateLimitStore(store.client, 'tg:rate:', () => store.ping()) }
      : {}),
  });
  const requestLimits = new RequestLimits(app);
  const failedAuth =
    config.auth === 'none' ? undefined : FailedAuthLimiter.create(app, 'v1', config.auth.failedAttempts);
  const failedAdminAuth = FailedAuthLimiter.create(app, 'admin', config.admin.failedAttempts);

  const target = (request: FastifyRequest, name: string): Deployment => {
    request.gateway.model = name;
    assertModelAllowed(request.gateway.principal, name);
    const deployment = router.resolve(name); // ④
    request.gateway.deployment = deployment.name;
    request.gateway.upstreamModel = deployment.upstreamModel;
    return deployment;
  };

  const pipeline: InferencePipeline = {
    json(request, reply, dispatch: JsonDispatch) {
      const work = forwardJson(request, reply, dispatch);
      request.gateway.finishing = work;
      return work;
    },

    async upload(request, reply, endpoint: UploadEndpoint) {
      const source = new UploadSource(request.raw, config.server.uploadLimit);
      try {
        return await forwardUpload(request, reply, endpoint, source);
      } catch (error) {
        // Refused while the client may still be sending. An answer followed by a close would
        // meet the rest of the upload, and the reset that follows loses the answer (the SDKs
        // see EPIPE and retry). Read the rest first, within the limit, then answer on a
        // connection that stays usable; past the limit, 413, closed only once the client has it.
        const outcome = await source.discardRest();
        if (outcome === 'ended') throw error;
        reply.header('connection', 'close');
        lingerAfterAnswer(request.raw.socket, () => source.discardAll());
        throw outcome === 'over-limit' ? new RequestTooLargeError(source.limit) : error;
      }
    },
  };

  async function forwardJson(request: FastifyRequest, reply: FastifyReply, dispatch: JsonDispatch) {
    const model = typeof dispatch.body.model === 'string' ? dispatch.body.model : dispatch.impliedModel;
    if (!model) throw new InvalidRequestError("Missing required parameter: 'model'.", 'model');
    const g = request.gateway;
    g.stream = dispatch.stream;
    // ④ first: the cache key and the prices depend on where the request would go.
    const deployment = target(request, model);
    reply.header('x-tollgate-backend', deployment.name);
    await requestLimits.enforce(request, reply); // ② requests per minute / day: hits count too
    const plan = cache.plan(request, reply, dispatch, deployment, model); // ③
    if (plan?.perItem) return cacheAnswers.embedWithItems(request, reply, dispatch, deployment, plan);
    const role: CacheRole = plan
      ? await cache.role(plan, dispatch.stream, g.abort.signal)
      : { kind: 'upstream' };
    if (plan && role.kind === 'hit')
      return cacheAnswers.fromStore(request, reply, dispatch, deployment, plan, role.hit);
    if (role.kind === 'tail') {
      try {
        return await cacheAnswers.joinStream(request, reply, dispatch, deployment, role.blocks);
      } finally {
        role.close?.();
      }
    }
    const lead = role.kind === 'upstream' ? role.lead : undefined;
    let ticket: QuotaTicket | undefined;
    try {
      ticket = await quota.reserve(
        g.principal,
        dispatch.endpoint,
        dispatch.body,
        deployment.upstreamModel,
        g.model,
      ); // ②
    } catch (error) {
      await cache.finish(lead, null);
      throw error;
    }
    if (ticket?.tokensPerMinute) reply.headers(tokenRateHeaders(ticket.tokensPerMinute));
    // ⑦ without usage from the upstream: the prompt as counted plus the output counted here.
    const countUsage = (completionTokens: () => number) => {
      if (g.usage || g.principal?.kind !== 'key') return;
      const prompt = ticket?.promptTokens ?? estimatePromptTokens(dispatch.endpoint, dispatch.body);
      g.usage = estimatedUsage(prompt, completionTokens());
      g.usageEstimated = true;
    };
    try {
      const upstream = cache.upstreamSignal(lead, g.abort.signal);
      const response = await dispatchJson(request, deployment, dispatch, upstream); // ⑤
      if (isEventStream(response)) {
        if (g.principal?.kind === 'key') g.tally = new StreamTally();
        if (response.status === 200) cache.streamStarted(lead);
        // ⑥ + ⑦: usage is read from the stream as it passes; ③ keeps a copy to store.
        await relaySse(request, reply, response, {
          ...relayOptions,
          stripUsageChunk: dispatch.stream && !clientWantsUsageChunk(dispatch.body),
          ...(lead
            ? {
                tee: (block: Buffer) => cache.streamBlock(lead, block),
                // Its client left, but joined requests still follow the stream: read on for them.
                readOnWithoutClient: () => cache.hasJoiners(lead),
              }
            : {}),
        });
        const tally = g.tally;
        g.tally = undefined;
        // A cut stream (upstream or client) is never stored: it lacks its end, so the assembler
        // does not call it complete. One read on for joiners after its client left is whole.
        const whole = response.status === 200 && !g.streamError && !upstream.aborted;
        // Stored after the client has its answer, like the settle: neither waits for the other.
        cache.finish(lead, whole ? undefined : null).catch(() => {});
        // An upstream that broke off after the 200 is refunded, like one that failed before it.
        if (g.streamError) await quota.release(ticket);
        else {
          // A client that left before the usage chunk pays for what was relayed to it.
          countUsage(() => tally?.completionTokens() ?? 0);
          await quota.settle(ticket, g.usage); // ⑦
        }
        return reply;
      }
      if (!response.contentType.includes('json')) {
        await cache.finish(lead, null);
        await quota.settle(ticket, undefined);
        return sendStreamed(reply, response); // ⑥ audio and other bytes
      }
      let body = await collectBody(response, MAX_UPSTREAM_JSON_BYTES);
      g.usage = usageFromJson(body); // ⑦
      if (response.status < 300) countUsage(() => completionTokensOfJson(body));
      if (dispatch.endpoint === 'embeddings' && dispatch.body.encoding_format === 'base64') {
        body = ensureBase64Embeddings(body);
      }
      sendBuffered(reply, response, body); // ⑥
      // Stored and settled once the answer is on its way: the client never waits on either.
      const kept = response.status === 200 ? body : null;
      cache.finish(lead, kept).catch(() => {});
      quota.settle(ticket, g.usage).catch((error: Error) => {
        request.log.warn({ error: { message: error.message } }, 'could not settle a quota reservation');
      });
      return reply;
    } catch (error) {
      await cache.finish(lead, null).catch(() => {});
      // The upstream failed: nothing was served, refund. A client that left before any answer
      // reached it still cost the prompt upstream: that is charged. A settle that already ran
      // makes either a no-op.
      let finish: Promise<unknown>;
      if (g.abort.signal.aborted) {
        countUsage(() => 0);
        finish = quota.settle(ticket, g.usage);
      } else finish = quota.release(ticket);
      await finish.catch(() => {});
      throw error;
    }
  }

  async function forwardUpload(
    request: FastifyRequest,
    reply: FastifyReply,
    endpoint: UploadEndpoint,
    source: UploadSource,
  ) {
    const upload = await openUpload(request, endpoint, source, (model) => target(request, model)); // ④
    reply.header('x-tollgate-backend', upload.deployment.name);
    const response = await dispatchUpload(request, upload); // ⑤
    return sendStreamed(reply, response); // ⑥
  }

  await app.register(
    async (v1) => {
      // ① auth, before the body is read: an unauthenticated caller never costs a body parse.
      v1.addHook('onRequest', authHook(authenticator, failedAuth));
      await v1.register(modelRoutes, { router });
      await v1.register(ownKeyRoutes, { quota });
      await v1.register(inferenceRoutes, { pipeline });
      await v1.register(uploadRoutes, { pipeline });
    },
    { prefix: '/v1' },
  );
  await app.register(healthRoutes, { readiness });
  await app.register(adminRoutes, {
    prefix: '/admin',
    registry,
    adminKey,
    failedAuth: failedAdminAuth,
    quota,
    version: GATEWAY_VERSION,
    cache: store.cache,
    metrics,
    clock,
  });

  const flushLastUsed = setInterval(() => void authenticator?.flushLastUsed(), LAST_USED_FLUSH_MS);
  flushLastUsed.unref();
  app.addHook('onClose', async () => {
    clearInterval(flushLastUsed);
    await authenticator?.flushLastUsed();
    // Every request settles and records first: streams cut by the grace period's end do so
    // after their connections are gone. Then answers being stored (and their coalescing claims)
    // and usage not yet written finish before the store goes.
    await openRequests.settled();
    await Promise.all([cache.drain(), usageRecorder.flush()]);
    await Promise.allSettled([backends.close(), store.close()]);
  });
  return app;
}
