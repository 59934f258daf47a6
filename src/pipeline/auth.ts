import type { FastifyRequest } from 'fastify';

/**
 * ① auth: who is calling. Credentials arrive as `Authorization: Bearer`, `api-key` (Azure
 * clients) or `x-api-key`. Until team keys exist the gateway is open: every caller is the
 * anonymous principal, and the presented key is only read, never forwarded upstream.
 */
export interface Principal {
  kind: 'anonymous';
}

export function presentedKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (authorization?.toLowerCase().startsWith('bearer ')) return authorization.slice(7).trim() || undefined;
  const apiKey = request.headers['api-key'] ?? request.headers['x-api-key'];
  return typeof apiKey === 'string' && apiKey ? apiKey : undefined;
}

export async function authenticate(_request: FastifyRequest): Promise<Principal> {
  return { kind: 'anonymous' };
}
