import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import rateLimit from '@fastify/rate-limit';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  LogController,
} from 'fastify';
import type { DestinationStream, Logger } from 'pino';
import { AdminKey } from './admin/admin-key.js';
import { MAX_JSON_ANSWER_BYTES } from './backends/backend.js';
import { BackendRegistry } from './backends/registry.js';
import type { Config } from './config/schema.js';
import { InvalidRequestError } from './errors.js';
import { registerCors } from './http/cors.js';
import { errorSurfaceOf, surfaceErrorPayload } from './http/error-surface.js';
import { keepNumbersInJsonBodies, registerJsonBodies } from './http/json-bodies.js';
import { createLogger } from './http/logger.js';
import { PendingWork } from './http/pending-work.js';
import { ReadinessProbe } from './http/readiness-probe.js';
import { createGatewayContext, processingMs } from './http/request-context.js';
import { requestLineWriter } from './http/request-log.js';
import { StreamShutdown } from './http/stream-shutdown.js';
import { authHook, KeyAuthenticator } from './pipeline/auth.js';
import { CacheStage } from './pipeline/cache.js';
import { CacheAnswers } from './pipeline/cache-answers.js';
import { FailedAuthLimiter } from './pipeline/failed-auth-limiter.js';
import { ForwardPath } from './pipeline/forward.js';
import { QuotaStage } from './pipeline/quota.js';
import { ModelRouter } from './pipeline/router.js';
import { answerClientError, registerErrorHandler } from './plugins/error-handler.js';
import { Metrics } from './plugins/metrics.js';
import { Registry } from './registry/registry.js';
import { adminRoutes } from './routes/admin/admin-routes.js';
import { healthRoutes } from './routes/health.js';
import { inferenceRoutes } from './routes/v1/inference.js';
import { messagesRoutes } from './routes/v1/messages.js';
import { modelRoutes } from './routes/v1/models.js';
import { ownKeyRoutes } from './routes/v1/own-key.js';
import { uploadRoutes } from './routes/v1/uploads.js';
import { DeploymentReport } from './routing/deployment-report.js';
import { randomHex } from './runtime/random-hex.js';
import { createStore } from './store/create-store.js';
import type { Store } from './store/store.js';
import { UsageRecorder } from './usage/usage-recorder.js';

/*
 * The request pipeline, in order. Every /v1 request passes these stages, one stage per file
 * under pipeline/. This file wires them (hooks, plugins, routes); pipeline/forward.ts runs
 * ②..⑦ for each request, top to bottom in one method.
 *
 *   ① auth     pipeline/auth.ts          onRequest hook on /v1, before the body is read
 *   ② quota    pipeline/quota.ts         requests per minute / day (pipeline/request-limits.ts),
 *                                        tokens, concurrency, budgets: one atomic step in the
 *                                        store, the reservation ended through its handle
 *                                        (pipeline/reservation.ts)
 *   ③ cache    pipeline/cache.ts         hit, join a request in flight, or fill the entry
 *                                        (pipeline/cache-fill.ts); answers it gives are sent by
 *                                        pipeline/cache-answers.ts
 *   ④ router   pipeline/router.ts        public model name -> deployment
 *   ⑤ backend  pipeline/dispatch.ts      one call to the deployment's adapter (backends/)
 *   ⑥ stream   pipeline/stream.ts        SSE read ahead to its first event, then relayed as it
 *                                        arrives; or JSON / bytes
 *   ⑦ usage    pipeline/usage.ts         token usage read from the answer; settles ②, recorded
 *                                        by usage/usage-recorder.ts when the response closes
 *
 * ② is split around ③ when the cache may answer: request rates are counted before it (a hit is
 * still a request), the token / concurrency / budget reservation after it (a hit spends none).
 * Otherwise both are one step, so a request waits on one store round trip before the upstream.
 * ④ resolves the model before both, since the cache key and the prices depend on the deployment.
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
  /** Ends the streams still relayed when shutdown's grace period is over (serve.ts stops it). */
  streamShutdown?: StreamShutdown;
}

const GATEWAY_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** Last-used times are written in batches this often, never on a request's path. */
const LAST_USED_FLUSH_MS = 5_000;

/** Incoming ids we keep: short, printable, no spaces (they end up in logs and headers). */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const EXPOSED_HEADERS = [
  'x-request-id',
  // Anthropic's SDKs read the request id from their own header name.
  'request-id',
  'openai-processing-ms',
  'x-tollgate-backend',
  'x-tollgate-attempts',
  'x-tollgate-cache',
  // How many inputs of an embeddings batch the cache answered; whether /v1/messages/count_tokens counted exactly.
  'x-tollgate-cache-items',
  'x-tollgate-token-count',
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

/** Node looks for requests past their deadline this often by default (its connectionsCheckingInterval). */
const NODE_DEADLINE_CHECK_MS = 30_000;

/**
 * node:http options bounding how long a request may take to arrive. Node only checks the
 * deadline every connectionsCheckingInterval, so a request is cut up to that much after it: a
 * tenth of the deadline keeps that lag small for short ones without checking more than needed.
 */
function requestDeadlineOptions(requestTimeoutMs: number) {
  return {
    requestTimeout: requestTimeoutMs,
    connectionsCheckingInterval: Math.min(NODE_DEADLINE_CHECK_MS, Math.ceil(requestTimeoutMs / 10)),
  };
}

function requestId(request: IncomingMessage): string {
  const incoming = request.headers['x-request-id'];
  if (typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming)) return incoming;
  return `req_${randomHex(16)}`;
}

export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const logger: FastifyBaseLogger = deps.logger ?? createLogger(config.log, deps.logDestination).logger;
  const logRequest = requestLineWriter(logger, config.log.requests);
  const backends = deps.registry ?? (await BackendRegistry.fromConfig(config, logger));
  const store = deps.store ?? (await createStore(config));
  const registry = new Registry(store);
  const { adminKey, generated } = await AdminKey.init(config.admin.key, store);
  if (generated) deps.onAdminKeyGenerated?.(generated);
  const authenticator = config.auth === 'none' ? undefined : new KeyAuthenticator(store, config.auth);
  const clock = deps.clock ?? Date.now;
  const quota = new QuotaStage(store, config.quota, clock);
  const cache = new CacheStage(store.cache, config.cache, config.models, logger, clock);
  const metrics = new Metrics();
  const usageRecorder = new UsageRecorder(store, config.quota.prices, logger, clock);
  const openRequests = new PendingWork();
  const router = new ModelRouter(config, backends);
  const deployments = new DeploymentReport(config.models, store.health, router, clock, backends);
  const readiness = new ReadinessProbe(store, backends, config.readiness, deployments);
  const stopping = deps.streamShutdown ?? new StreamShutdown();
  const relayOptions = {
    keepAliveMs: config.server.keepAliveIntervalMs,
    bodyLimit: config.server.bodyLimit,
    shutdown: stopping,
  };
  const cacheAnswers = new CacheAnswers({
    cache,
    quota,
    relay: relayOptions,
    hitsSpendBudget: config.cache.hitsSpendBudget,
    maxJsonBytes: MAX_JSON_ANSWER_BYTES,
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
      const payload = surfaceErrorPayload(
        errorSurfaceOf(request.url, request.headers),
        error.code === 'FST_ERR_BAD_URL' ? new InvalidRequestError('The request URL is malformed.') : error,
        config.server.bodyLimit,
        { contentType: request.headers['content-type'], requestId: request.id },
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
    // Fastify's default (0) would turn Node's own limit off. Given to node:http as well, so that
    // its headers timeout is derived from it (never above it); Fastify sets it again after.
    requestTimeout: config.server.requestTimeoutMs,
    http: { requireHostHeader: false, ...requestDeadlineOptions(config.server.requestTimeoutMs) },
  });

  app.decorateRequest('gateway', undefined as never);
  app.addHook('onRequest', (request, reply, done) => {
    request.gateway = createGatewayContext(
      request,
      reply,
      openRequests,
      (ended, endedReply) => {
        logRequest(ended, endedReply);
        metrics.observe(ended, endedReply);
        usageRecorder.record(ended, endedReply); // ⑦
      },
      stopping,
    );
    const headers = request.headers;
    if (
      headers['content-type'] === undefined &&
      (Number(headers['content-length']) > 0 || headers['transfer-encoding'])
    ) {
      // `curl --data-binary @body.json` and some scripts send JSON with no Content-Type at all.
      headers['content-type'] = 'application/json';
    }
    reply.header('x-request-id', request.id);
    // Anthropic's SDKs read the request id from their own header name.
    if (errorSurfaceOf(request.url, headers) === 'anthropic') reply.header('request-id', request.id);
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

  registerJsonBodies(app);

  // Before CORS, whose hook answers preflights: this one answers an OPTIONS that is none.
  registerErrorHandler(app, config.server.bodyLimit);
  registerCors(app, { origins: config.server.cors.origins, exposedHeaders: EXPOSED_HEADERS });

  // Failed authentications per client IP, counted where all instances see them: in Redis each
  // limiter's counters are `tg:rate:<its own key>`. (Request rates of keys and teams are the
  // quota store's, counted with the reservation: pipeline/quota.ts.)
  const rateLimitStore = store.rateLimitStore('tg:rate:');
  await app.register(rateLimit, {
    global: false,
    ...(rateLimitStore ? { store: rateLimitStore } : {}),
  });
  const failedAuth =
    config.auth === 'none' ? undefined : FailedAuthLimiter.create(app, 'v1', config.auth.failedAttempts);
  const failedAdminAuth = FailedAuthLimiter.create(app, 'admin', config.admin.failedAttempts);

  const pipeline = new ForwardPath({
    router,
    quota,
    cache,
    cacheAnswers,
    relay: relayOptions,
    maxJsonBytes: MAX_JSON_ANSWER_BYTES,
    uploadLimit: config.server.uploadLimit,
    attempts: { health: store.health, now: clock, leaseTtlMs: config.quota.reservationTtlMs },
  });

  await app.register(
    async (v1) => {
      // ① auth, before the body is read: an unauthenticated caller never costs a body parse.
      v1.addHook('onRequest', authHook(authenticator, failedAuth));
      keepNumbersInJsonBodies(v1);
      await v1.register(modelRoutes, { router });
      await v1.register(ownKeyRoutes, { quota });
      await v1.register(inferenceRoutes, { pipeline });
      await v1.register(messagesRoutes, { pipeline });
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
    deployments,
    backends,
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
