import { GatewayError } from '../../errors.js';

/** The request sends `tools` to a local server configured without tool calls. */
/**
 * How a message names the model: as the client sent it, with the server's own name for it when
 * a route renamed it (`'local/llama3' ('llama3' on backend 'oll' (Ollama))`), which is the name
 * to pull or load there.
 */
function modelOn(call: ModelNames, backend: string, label: string): string {
  const sent = call.publicModel ?? call.model;
  return sent === call.model
    ? `'${sent}' on backend '${backend}' (${label})`
    : `'${sent}' ('${call.model}' on backend '${backend}' (${label}))`;
}

/** The names of a call's model: the upstream's and the one the client sent. */
interface ModelNames {
  model: string;
  publicModel?: string | undefined;
}

export class ToolsNotSupportedError extends GatewayError {
  constructor(call: ModelNames, backend: string, label: string) {
    super(
      400,
      'invalid_request_error',
      'unsupported_parameter',
      `The model ${modelOn(call, backend, label)} is configured without tool calls (capabilities.tools: false); send the request without 'tools'.`,
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
  constructor(call: ModelNames, backend: string, label: string, listKnown: boolean) {
    const why = listKnown ? 'it is not among the models the server lists' : 'the server answered 404 for it';
    super(
      404,
      'invalid_request_error',
      'model_not_found',
      `The model ${modelOn(call, backend, label)} is not available: ${why}. Pull or load it there first.`,
      { param: 'model' },
    );
  }
}
