import type { Dispatcher } from 'undici';
import { UpstreamError } from '../errors.js';

/** The model ids of an upstream's `GET /models` answer (OpenAI's and Anthropic's `{data: [{id}]}`). */
export async function readModelIds(response: Dispatcher.ResponseData, backend: string): Promise<string[]> {
  if (response.statusCode >= 400) {
    await response.body.dump();
    throw new UpstreamError(
      `Backend '${backend}' refused to list its models (status ${response.statusCode}).`,
    );
  }
  const parsed = (await response.body.json()) as { data?: Array<{ id?: unknown }> };
  return (parsed.data ?? []).map((model) => model.id).filter((id): id is string => typeof id === 'string');
}
