import type { JsonEndpoint } from '../backends/backend.js';
import type { StreamErrorSurface } from '../http/error-surface.js';

/**
 * How a stream relayed for `endpoint` ends when it fails (or shutdown cuts it) after its 200:
 * the error event its own API sends. One choice for every relay (live, replayed from the cache,
 * joined), so a client never reads another API's error in its stream.
 */
export function streamSurfaceOf(endpoint: JsonEndpoint): StreamErrorSurface {
  if (endpoint === 'messages') return 'anthropic';
  return endpoint === 'responses' ? 'responses' : 'openai';
}
