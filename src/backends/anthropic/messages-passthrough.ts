/*
 * Anthropic's own Messages API (`/v1/messages`, `/v1/messages/count_tokens`) from a client that
 * speaks it: the request is forwarded as the client wrote it (model rewritten by the gateway) and
 * the answer relayed byte for byte. Only the protocol headers are merged, and only the upstream
 * failures that are the request's own go back to the client as the upstream wrote them.
 */

/** Upstream error headers an Anthropic client acts on (the SDK reads x-should-retry first). */
export const PASS_THROUGH_RETRY_HEADERS = ['retry-after', 'retry-after-ms', 'x-should-retry'];

/**
 * `anthropic-version` and `anthropic-beta` for a forwarded request. The client's version wins: the
 * body it wrote follows that version's rules. Betas are the union, the client's first, then the
 * backend's configured ones (`configured` is the backend's own headers), each once.
 */
export function passThroughHeaders(
  configured: Readonly<Record<string, string>>,
  client: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const headers: Record<string, string> = {};
  const version = client?.['anthropic-version']?.trim() || configured['anthropic-version'];
  if (version !== undefined) headers['anthropic-version'] = version;
  const betas = new Set([...betaList(client?.['anthropic-beta']), ...betaList(configured['anthropic-beta'])]);
  if (betas.size > 0) headers['anthropic-beta'] = [...betas].join(',');
  return headers;
}

function betaList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((flag) => flag.trim())
    .filter((flag) => flag !== '');
}

/**
 * An upstream 4xx that is the request's own answer (a malformed body, an unknown model, a prompt
 * too large, a rate limit, a permission the request needs), relayed as the upstream wrote it.
 * Not: 401 and 402, which Anthropic sends about the gateway's key or account, so the client's
 * request is fine and another deployment may serve it; nor 408, a timeout. Those and every 5xx
 * keep the chat calls' mapping (anthropic-errors.ts). A 403 `permission_error` goes back as the
 * 403 it is, as on the chat surface (README, "Claude models": 403 -> 403): the key pool still
 * takes the key that met it out of use.
 */
export function isRelayedAsIs(status: number): boolean {
  return status >= 400 && status < 500 && status !== 401 && status !== 402 && status !== 408;
}
