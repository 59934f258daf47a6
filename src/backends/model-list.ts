import type { Dispatcher } from 'undici';
import { UpstreamError } from '../errors.js';
import { readLimited } from './read-limited.js';

/**
 * The largest model list read: far past any provider's (OpenRouter's few hundred models with
 * their metadata are a few MB); an answer that goes on past it is not read on.
 */
export const MAX_MODEL_LIST_BYTES = 16 * 1024 * 1024;

/** The model ids of an upstream's `GET /models` answer (OpenAI's and Anthropic's `{data: [{id}]}`). */
export async function readModelIds(response: Dispatcher.ResponseData, backend: string): Promise<string[]> {
  if (response.statusCode >= 400) {
    await response.body.dump();
    throw new UpstreamError(
      `Backend '${backend}' refused to list its models (status ${response.statusCode}).`,
    );
  }
  const bytes = await readLimited(response.body, MAX_MODEL_LIST_BYTES + 1);
  if (bytes.length > MAX_MODEL_LIST_BYTES) {
    response.body.destroy();
    throw new UpstreamError(
      `Backend '${backend}' answered a model list larger than ${MAX_MODEL_LIST_BYTES / 1024 / 1024} MB.`,
    );
  }
  const parsed = JSON.parse(bytes.toString('utf8')) as { data?: Array<{ id?: unknown }> } | null;
  const data = Array.isArray(parsed?.data) ? parsed.data : [];
  return data
    .map((model) => (model as { id?: unknown } | null)?.id)
    .filter((id): id is string => typeof id === 'string');
}
