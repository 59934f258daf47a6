import type { FastifyBodyParser, FastifyInstance } from 'fastify';
import { bodyKeepingNumbers } from '../json-numbers.js';

/**
 * JSON request bodies: Fastify's own parser (its errors and its refusal of `__proto__` keys), then
 * the numbers JavaScript cannot hold kept as the client wrote them (json-numbers.ts), so a tool
 * call's 19-digit id reaches the upstream unrounded. curl's `-d` says form-urlencoded and some
 * clients say text/plain; people mean JSON, so those bodies are read as JSON too.
 */
export function registerJsonBodies(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error') as FastifyBodyParser<string>;
  const parseJson: FastifyBodyParser<string> = (request, body, done) =>
    parse.call(app, request, body, (error, value) => {
      if (error) done(error, undefined);
      else done(null, bodyKeepingNumbers(body, value));
    });
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJson);
  app.addContentTypeParser(
    ['application/x-www-form-urlencoded', 'text/plain'],
    { parseAs: 'string' },
    parseJson,
  );
}
