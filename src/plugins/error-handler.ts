import { randomUUID } from 'node:crypto';
import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';
import { ClientAbortedError } from '../backends/transport-failure.js';
import {
  GatewayError,
  InvalidRequestError,
  MalformedRequestError,
  MethodNotAllowedError,
  RouteNotFoundError,
} from '../errors.js';
import {
  type ErrorSurface,
  endWithSurfaceError,
  errorSurfaceOf,
  surfaceErrorPayload,
} from '../http/error-surface.js';
import { lingerAfterAnswer, lingerUntilClosed } from '../http/lingering-close.js';
import { isFastifyError } from '../http/openai-error.js';
import { RouteTable } from '../http/route-table.js';
import { StoreUnavailableError } from '../store/store-unavailable.js';
import { StoreOutageLog } from './store-outage-log.js';

/** The path of a request, without its query string. */
function pathOf(request: FastifyRequest): string {
  return request.url.split('?')[0] ?? request.url;
}

/**
 * Registers the error handler, the answers for requests no route takes (404 / 405) and for
 * requests that are not requests (no Host, OPTIONS that is no CORS preflight, an Expect the
 * gateway does not meet). Registered before the routes (it learns them from onRoute) and before
 * the CORS hook (http/cors.ts), which answers the preflights this one lets through.
 */
export function registerErrorHandler(app: FastifyInstance, bodyLimit: number): void {
  const routes = new RouteTable();
  app.addHook('onRoute', (route) => routes.add(route.method, route.url));
  const outages = new StoreOutageLog(app.log);

  app.addHook('onRequest', (request, reply, done) => {
    // node:http's own check writes an empty 400; it is turned off (server options) for this one.
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      reply.header('connection', 'close');
      done(new InvalidRequestError('HTTP/1.1 requests need a Host header.'));
      return;
    }
    const headers = request.headers;
    if (request.method !== 'OPTIONS' || (headers.origin && headers['access-control-request-method'])) {
      done();
      return;
    }
    // An OPTIONS that is no CORS preflight asks what the path takes (RFC 9110 §9.3.7): say it,
    // or say there is nothing there. Preflights go on to the CORS hook.
    const allowed = routes.methodsAt(pathOf(request));
    if (allowed.length === 0) {
      done(new RouteNotFoundError(request.method, pathOf(request)));
      return;
    }
    reply.code(204).header('allow', allowed.join(', ')).send();
  });

  app.setErrorHandler((error, request, reply) => {
    // Answered already (refused at shutdown's end, then its work stopped): nothing more to send.
    if (reply.raw.headersSent) {
      reply.hijack();
      return;
    }
    const payload = surfaceErrorPayload(errorSurfaceOf(request.url, request.headers), error, bodyLimit, {
      contentType: request.headers['content-type'],
      requestId: request.id,
    });
    // A client that hung up is not a server failure: nothing worth an error line.
    const clientGone = error instanceof ClientAbortedError || request.gateway?.abort.signal.aborted === true;
    if (payload.status >= 500 && !clientGone) {
      // Not under `err`: pino's serializer for that key would replace these fields with a stack.
      const fields = {
        error: {
          type: (error as Error).name,
          message: (error as Error).message,
          code: (error as FastifyError).code,
        },
      };
      const outage = error instanceof StoreUnavailableError ? error.outage : undefined;
      if (outage) {
        // One for every request while the store's connection is down: the outage itself is the
        // error, said once when it starts and once when it is over (StoreOutageLog); each
        // refusal is a warning. Redis refusing while connected (out of memory, read-only) has
        // no such end to tell, and stays an error each time.
        outages.refusal(outage);
        request.log.warn(fields, 'request failed');
      } else request.log.error(fields, 'request failed');
    }
    if (isFastifyError(error) && error.code.startsWith('FST_ERR_CTP_') && !request.raw.complete) {
      // Fastify refused the body (too large, of the wrong type) before reading all of it: the
      // connection closes (always: a kept-alive one would be destroyed by the linger deadline
      // under a later request), but only once the client has the answer, reading on meanwhile.
      reply.header('connection', 'close');
      const raw = request.raw;
      lingerAfterAnswer(raw.socket, () => {
        const ended = new Promise((resolve) => {
          raw.once('end', resolve);
          raw.once('close', resolve);
        });
        raw.resume();
        return ended;
      });
    }
    reply.code(payload.status).headers(payload.headers).type('application/json').send(payload.body);
  });
  app.setNotFoundHandler((request) => {
    const path = pathOf(request);
    const allowed = routes.methodsAt(path);
    if (allowed.length > 0) throw new MethodNotAllowedError(request.method, path, allowed);
    throw new RouteNotFoundError(request.method, path);
  });

  // `Expect: 100-continue` is met by node:http; any other expectation it refuses itself, with an
  // empty 417, unless someone listens.
  app.server.on('checkExpectation', (request, response) => {
    const error = new GatewayError(
      417,
      'invalid_request_error',
      null,
      `The gateway cannot meet 'Expect: ${String(request.headers.expect)}'; only '100-continue' is supported.`,
    );
    // In the shape of the API the request speaks (Anthropic's on /v1/messages), as any refusal.
    endWithSurfaceError(response, request, error, bodyLimit, newRequestId());
  });

  // node:http hands a CONNECT (a client taking the gateway for a proxy) to this event and
  // otherwise drops the connection without a word.
  app.server.on('connect', (request, socket: Socket) => {
    socket.on('error', () => {});
    socket.resume();
    const methods = ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS'];
    answerAndClose(socket, new MethodNotAllowedError('CONNECT', String(request.url), methods));
  });
}

function newRequestId(): string {
  return `req_${randomUUID().replaceAll('-', '')}`;
}

/** What went wrong, for llhttp's error codes a client can cause. */
function parseFailure(error: Error & { code?: string }): MalformedRequestError {
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new MalformedRequestError(408, 'The request did not arrive in time.');
    case 'HPE_HEADER_OVERFLOW':
      return new MalformedRequestError(431, 'The request headers are larger than the gateway accepts.');
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new MalformedRequestError(
        413,
        'The chunk extensions are larger than the gateway accepts.',
        'request_too_large',
      );
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_CR_EXPECTED':
    case 'HPE_LF_EXPECTED':
    case 'HPE_INVALID_CONSTANT':
      return new MalformedRequestError(
        400,
        'The request is not valid HTTP/1.1: a header line is malformed (a bare CR or LF, a folded line, or a character headers may not contain).',
      );
    case 'HPE_INVALID_URL':
      return new MalformedRequestError(
        400,
        'The request is not valid HTTP/1.1: the request target is malformed.',
      );
    case 'HPE_INVALID_METHOD':
      return new MalformedRequestError(400, 'The request is not valid HTTP/1.1: the method is not valid.');
    case 'HPE_INVALID_VERSION':
      return new MalformedRequestError(
        400,
        'The request is not valid HTTP/1.1: the HTTP version is not supported.',
      );
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CHUNK_SIZE':
      return new MalformedRequestError(
        400,
        "The request is not valid HTTP/1.1: its body's framing (Content-Length or Transfer-Encoding) is malformed or ambiguous.",
      );
    default:
      return new MalformedRequestError(400, 'The request is not valid HTTP/1.1.');
  }
}

const answeredSockets = new WeakSet<Socket>();

/**
 * Fastify's clientErrorHandler: bytes node:http could not make a request of. Answered with the
 * envelope (Fastify's default writes its own JSON shape), then the connection closes: after
 * a parse error nothing more on it can be trusted.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  // A reset connection has no one to answer; a parser in error reports each later chunk again.
  if (error.code === 'ECONNRESET' || socket.destroyed || answeredSockets.has(socket)) return;
  answeredSockets.add(socket);
  const inFlight = (
    socket as Socket & {
      _httpMessage?: { headersSent?: boolean; statusCode: number; req?: IncomingMessage };
    }
  )._httpMessage;
  if (!socket.writable || inFlight?.headersSent) {
    // An answer already started on this connection: another one would corrupt it.
    socket.destroy();
    return;
  }
  const failure = parseFailure(error);
  // A request cut while its body arrives (the request timeout): its request line and metrics
  // read the status from the response node:http began for it, which would say 200; its headers
  // say which API it speaks.
  if (inFlight) inFlight.statusCode = failure.status;
  const request = inFlight?.req;
  answerAndClose(socket, failure, request ? errorSurfaceOf(request.url ?? '', request.headers) : 'openai');
}

/** Writes the envelope straight onto a connection node:http gave up on (or handed over), then closes it. */
function answerAndClose(socket: Socket, error: GatewayError, surface: ErrorSurface = 'openai'): void {
  const requestId = newRequestId();
  // The body limit only words Fastify's own 413; a GatewayError is answered as it is.
  const payload = surfaceErrorPayload(surface, error, 0, { requestId });
  const body = Buffer.isBuffer(payload.body) ? payload.body.toString('utf8') : JSON.stringify(payload.body);
  const headers = Object.entries(payload.headers).map(([name, value]) => `${name}: ${value}\r\n`);
  // Anthropic's SDKs read the request id from their own header name.
  if (surface === 'anthropic') headers.push(`Request-Id: ${requestId}\r\n`);
  socket.end(
    `HTTP/1.1 ${payload.status} ${STATUS_CODES[payload.status] ?? 'Error'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Request-Id: ${requestId}\r\n` +
      headers.join('') +
      'Connection: close\r\n\r\n' +
      body,
  );
  lingerUntilClosed(socket);
}
