import type { FastifyBodyParser, FastifyInstance } from 'fastify';
import { ContentEncodingError, PrototypeKeyError } from '../errors.js';
import { bodyKeepingNumbers } from '../json-numbers.js';
import { MAX_JSON_DEPTH, NestedTooDeeplyError, nestsDeeperThan } from './json-depth.js';

/** Content types read as JSON: curl's `-d` says form-urlencoded and some clients text/plain. */
const JSON_ALIASES = ['application/x-www-form-urlencoded', 'text/plain'];

/**
 * Fastify's JSON parser, refusing `__proto__` and `constructor.prototype` keys. It reports those,
 * and a compressed body (it does not decompress), as unparseable JSON: told apart here so the
 * client learns what to change. A body nested too deeply is refused before it is parsed: parsing
 * a few megabytes of `[` blocks the event loop for seconds, only for the gateway to refuse the
 * result when serialising it overflows the stack.
 */
function defaultJsonParser(app: FastifyInstance): FastifyBodyParser<string> {
  const parse = app.getDefaultJsonParser('error', 'error') as FastifyBodyParser<string>;
  return function parseRefusingPrototypeKeys(this: FastifyInstance, request, body, done) {
    if (nestsDeeperThan(body, MAX_JSON_DEPTH)) return done(new NestedTooDeeplyError(), undefined);
    parse.call(this, request, body, (error, value) => {
      if (!error) return done(null, value);
      // Told apart only once parsing failed: the path every good request takes pays nothing.
      const encoding = request.headers['content-encoding'];
      if (encoding !== undefined && COMPRESSED.test(encoding))
        done(new ContentEncodingError(encoding), undefined);
      else if (isWellFormedJson(body)) done(new PrototypeKeyError(), undefined);
      else done(error, value);
    });
  };
}

/** A content coding that compresses (RFC 9110's, and br and zstd): other values are not ours to judge. */
const COMPRESSED = /^\s*(x-)?(gzip|deflate|br|zstd|compress)\s*(,|$)/i;

function isWellFormedJson(text: string | Buffer): boolean {
  try {
    JSON.parse(text.toString());
    return true;
  } catch {
    return false;
  }
}

/** Every route: bodies sent as form-urlencoded or text/plain are read as JSON; people mean JSON. */
export function registerJsonBodies(app: FastifyInstance): void {
  app.addContentTypeParser(JSON_ALIASES, { parseAs: 'string' }, defaultJsonParser(app));
}

/**
 * The API's routes: Fastify's own JSON parser (its errors and its refusal of `__proto__` keys),
 * then the numbers JavaScript cannot hold put back as the client wrote them where the gateway
 * only writes them on (json-numbers.ts), so a tool call's 19-digit id reaches the upstream
 * unrounded. Not the admin API: its numbers are read (limits, budgets) and stored.
 */
export function keepNumbersInJsonBodies(scope: FastifyInstance): void {
  const parse = defaultJsonParser(scope);
  const parseJson: FastifyBodyParser<string> = (request, body, done) =>
    parse.call(scope, request, body, (error, value) => {
      if (error) done(error, undefined);
      else done(null, bodyKeepingNumbers(body, value));
    });
  scope.removeContentTypeParser(['application/json', ...JSON_ALIASES]);
  scope.addContentTypeParser(['application/json', ...JSON_ALIASES], { parseAs: 'string' }, parseJson);
}
