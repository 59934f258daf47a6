import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import type { BackendResponse, JsonEndpoint, UploadEndpoint } from '../backends/backend.js';
import { EndpointNotSupportedError, ModelNotFoundError } from '../errors.js';
import type { Deployment } from './router.js';

/** Endpoints whose streams can carry a usage chunk on request (`stream_options`). */
const USAGE_CHUNK_ENDPOINTS: ReadonlySet<JsonEndpoint> = new Set(['chat.completions', 'completions']);

export interface JsonDispatch {
  endpoint: JsonEndpoint;
  /** The client's body, untouched. */
  body: Record<string, unknown>;
  stream: boolean;
  /** Route by this name when the body has no model (OpenAI's default for the endpoint). */
  impliedModel?: string;
}

/** True when the client asked for the usage chunk itself (so it must not be stripped). */
export function clientWantsUsageChunk(body: Record<string, unknown>): boolean {
  const options = body.stream_options as { include_usage?: unknown } | null | undefined;
  return options?.include_usage === true;
}

/**
 * The body as the upstream gets it: `model` rewritten to the upstream's name, unknown fields
 * untouched, no defaults added. The one addition: streams always ask for usage, so that
 * accounting sees real token counts (the relay strips the chunk if the client did not ask).
 */
export function forwardedBody(dispatch: JsonDispatch, deployment: Deployment): Record<string, unknown> {
  const body: Record<string, unknown> = { ...dispatch.body };
  if (typeof dispatch.body.model === 'string') body.model = deployment.upstreamModel;
  // Routed by OpenAI's implied default: forward no model, unless the route renames it (an alias
  // would otherwise be bypassed by leaving the field out).
  else if (deployment.upstreamModel !== deployment.publicName) body.model = deployment.upstreamModel;
  if (
    dispatch.stream &&
    USAGE_CHUNK_ENDPOINTS.has(dispatch.endpoint) &&
    !clientWantsUsageChunk(dispatch.body)
  ) {
    const options = dispatch.body.stream_options;
    body.stream_options = {
      ...(options !== null && typeof options === 'object' ? options : {}),
      include_usage: true,
    };
  }
  return body;
}

/** Client headers Anthropic's protocol needs upstream: its version and the betas it opted into. */
const ANTHROPIC_HEADERS = ['anthropic-version', 'anthropic-beta'] as const;

function protocolHeaders(
  request: FastifyRequest,
  endpoint: JsonEndpoint,
): Record<string, string> | undefined {
  if (endpoint !== 'messages' && endpoint !== 'messages.count_tokens') return undefined;
  const headers: Record<string, string> = {};
  for (const name of ANTHROPIC_HEADERS) {
    const value = request.headers[name];
    if (typeof value === 'string') headers[name] = value;
    else if (Array.isArray(value)) headers[name] = value.join(',');
  }
  return headers;
}

/** ⑤ backend: one call to the deployment's adapter. */
export async function dispatchJson(
  request: FastifyRequest,
  deployment: Deployment,
  dispatch: JsonDispatch,
  /** Ends the upstream call; the client's own abort unless others depend on this call (③). */
  signal: AbortSignal = request.gateway.abort.signal,
): Promise<BackendResponse> {
  if (!deployment.backend.supports(dispatch.endpoint)) {
    throw new EndpointNotSupportedError(dispatch.endpoint, deployment.publicName);
  }
  const headers = protocolHeaders(request, dispatch.endpoint);
  const sent = deployment.backend.send({
    kind: 'json',
    endpoint: dispatch.endpoint,
    model: deployment.upstreamModel,
    publicModel: deployment.publicName,
    body: forwardedBody(dispatch, deployment),
    stream: dispatch.stream,
    signal,
    requestId: request.id,
    ...(headers ? { headers } : {}),
  });
  // Only a renamed model has a name to put right (and every call pays for a catch).
  return deployment.upstreamModel === deployment.publicName ? sent : sent.catch(renamedFor(deployment));
}

/** A rejection handler that names the client's model in a backend's model_not_found. */
function renamedFor(deployment: Deployment): (error: unknown) => never {
  return (error: unknown) => {
    throw namedForClient(error, deployment);
  };
}

/**
 * A backend that does not know the model names the one it was asked for, the upstream's (`nope`
 * for a client's `f/nope` routed by `f/*`): the client is told of the model it sent.
 */
function namedForClient(error: unknown, deployment: Deployment): unknown {
  return error instanceof ModelNotFoundError && deployment.upstreamModel !== deployment.publicName
    ? new ModelNotFoundError(deployment.publicName)
    : error;
}

/** ⑤ backend, for a multipart upload opened by upload-body.ts, to one deployment. */
export function dispatchUpload(
  request: FastifyRequest,
  upload: { endpoint: UploadEndpoint; contentType: string },
  deployment: Deployment,
  body: Readable,
  signal: AbortSignal = request.gateway.abort.signal,
): Promise<BackendResponse> {
  return deployment.backend
    .send({
      kind: 'upload',
      endpoint: upload.endpoint,
      model: deployment.upstreamModel,
      publicModel: deployment.publicName,
      contentType: upload.contentType,
      body,
      signal,
      requestId: request.id,
    })
    .catch(renamedFor(deployment));
}
