import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/**
 * Resolves once the gateway's response to the request sent with `x-request-id: requestId` has
 * closed. For a client that hung up, the gateway has then seen it go: its own close handlers
 * run in that same event, and nothing it sends anyone shows that moment. Call it before the
 * request is sent.
 */
export function responseClosed(server: Server, requestId: string): Promise<void> {
  return new Promise((resolve) => {
    const onRequest = (request: IncomingMessage, response: ServerResponse) => {
      if (request.headers['x-request-id'] !== requestId) return;
      server.off('request', onRequest);
      response.once('close', () => resolve());
    };
    server.on('request', onRequest);
  });
}
