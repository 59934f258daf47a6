import { GatewayError } from '../../errors.js';

/** The request sends `tools` to a local server configured without tool calls. */
export class ToolsNotSupportedError extends GatewayError {
  constructor(model: string, backend: string, label: string) {
    super(
      400,
      'invalid_request_error',
      'unsupported_parameter',
      `The model '${model}' is served by backend '${backend}' (${label}), which is configured without tool calls (capabilities.tools: false); send the request without 'tools'.`,
      { param: 'tools' },
    );
  }
}

/**
 * The local server answered 404 for a model it does not list (or while its list is not known):
 * OpenAI's model_not_found, whatever shape the server's own 404 had (vLLM's is not OpenAI's
 * envelope).
 */
export class LocalModelNotFoundError extends GatewayError {
  constructor(model: string, backend: string, label: string, listKnown: boolean) {
    const why = listKnown ? 'it is not among the models the server lists' : 'the server answered 404 for it';
    super(
      404,
      'invalid_request_error',
      'model_not_found',
      `The model '${model}' is not available on backend '${backend}' (${label}): ${why}. Pull or load it there first.`,
      { param: 'model' },
    );
  }
}
