import type { FastifyBodyParser, FastifyInstance } from 'fastify';
import { bodyKeepingNumbers } from '../json-numbers.js';

/** Content types read as JSON: curl's `-d` says form-urlencoded and some clients text/plain. */
const JSON_ALIASES = ['application/x-www-form-urlencoded', 'text/plain'];

function defaultJsonParser(app: FastifyInstance): FastifyBodyParser<string> {
  return app.getDefaultJsonParser('error', 'error') as FastifyBodyParser<string>;
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
