import type { z } from 'zod';
import { GatewayError, InvalidRequestError, ServiceUnavailableError } from '../../errors.js';
import type { Backend } from '../backend.js';
import { availabilityOf, discoveringBackendOf } from './backend-availability.js';
import type { refreshedModelsSchema } from './refresh-schema.js';

export class BackendNotFoundError extends GatewayError {
  constructor(name: string, declared: string[]) {
    super(
      404,
      'invalid_request_error',
      'backend_not_found',
      `No backend named '${name}' (declared: ${declared.join(', ') || 'none'}).`,
      { param: 'name' },
    );
  }
}

/** `POST /admin/backends/:name/refresh`: what the server lists now. */
export type RefreshedModels = z.output<typeof refreshedModelsSchema>;

/**
 * Reads a local server's model list now (after pulling or loading a model there) and answers
 * with it. A server that does not answer is a 503 saying why, and routing skips it from now on.
 */
export async function refreshBackendModels(
  backends: { all(): Backend[] },
  name: string,
): Promise<RefreshedModels> {
  const all = backends.all();
  const backend = all.find((candidate) => candidate.name === name);
  if (!backend)
    throw new BackendNotFoundError(
      name,
      all.map((candidate) => candidate.name),
    );
  const discovering = discoveringBackendOf(backend);
  if (!discovering)
    throw new InvalidRequestError(
      `Backend '${name}' (type ${backend.type}) does not discover its models; only the local-server types (ollama, vllm, llamacpp-server, lmstudio) do.`,
      'name',
    );
  const found = await discovering.refreshModels();
  const availability = availabilityOf(backend);
  if (found.state === 'down' || !availability) {
    const waitMs = backend.unavailableForMs?.() ?? 1_000;
    throw new ServiceUnavailableError(
      `Backend '${name}' ${found.misconfigured ? 'is misconfigured' : 'did not answer'}: ${found.error ?? 'unknown reason'}. Routing skips it until a probe finds it up (next in ${Math.ceil(waitMs / 1_000)} s).`,
      Math.max(1, Math.ceil(waitMs / 1_000)),
    );
  }
  return {
    object: 'list',
    backend: name,
    type: backend.type,
    availability,
    data: (found.models ?? []).map((id) => ({ id, object: 'model', owned_by: backend.type })),
  };
}
