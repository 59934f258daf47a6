/**
 * `import … from 'tollgate'`: what a backend module's author needs (see the README's "Your own
 * backend (modules)"). The gateway itself starts from server.ts; nothing here starts anything.
 * The Backend contract suite is `tollgate/testing` (src/testing/), apart: it needs vitest.
 */
export type {
  Backend,
  BackendCall,
  BackendResponse,
  Endpoint,
  JsonCall,
  JsonEndpoint,
  UploadCall,
  UploadEndpoint,
} from './backends/backend.js';
export { ENDPOINT_PATHS } from './backends/backend.js';
export type {
  ModuleBackend,
  ModuleBackendContext,
  ModuleBackendFactory,
  ModuleBackendLogger,
  ModuleBackendResponse,
  ModuleBodyChunk,
} from './backends/module/module-backend-api.js';
export { encodeDone, encodeEvent } from './backends/sse-encoder.js';
export { ClientAbortedError } from './backends/transport-failure.js';
export type { GatewayErrorOptions, OpenAIErrorBody, OpenAIErrorType } from './errors.js';
export {
  BackendBusyError,
  EndpointNotSupportedError,
  GatewayError,
  InvalidRequestError,
  ServiceUnavailableError,
  UpstreamClientError,
  UpstreamError,
  UpstreamTimeoutError,
} from './errors.js';
