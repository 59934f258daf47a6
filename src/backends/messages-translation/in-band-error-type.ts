import { type Json, stringOf } from '../../json-values.js';
import type { AnthropicErrorType } from '../../schemas/anthropic/error-types.js';
import { anthropicTypeForStatus } from '../../schemas/anthropic/error-types.js';

/**
 * Anthropic's type for an error a chat stream carried in band (`data: {"error":{...}}`). Only
 * types whose status the gateway's read-ahead knows (pipeline/in-band-error.ts), so a failure as
 * the first event still fails the attempt with the status it stands for.
 */
const TYPE_OF: Readonly<Record<string, AnthropicErrorType>> = {
  invalid_request_error: 'invalid_request_error',
  context_length_exceeded: 'invalid_request_error',
  authentication_error: 'authentication_error',
  invalid_api_key: 'authentication_error',
  permission_error: 'permission_error',
  not_found_error: 'not_found_error',
  model_not_found: 'not_found_error',
  rate_limit_error: 'rate_limit_error',
  rate_limit_exceeded: 'rate_limit_error',
  tokens: 'rate_limit_error',
  insufficient_quota: 'rate_limit_error',
  overloaded: 'overloaded_error',
  overloaded_error: 'overloaded_error',
  service_unavailable: 'overloaded_error',
};

export function inBandErrorType(error: Json): AnthropicErrorType {
  for (const field of [error.status, error.code]) {
    if (typeof field === 'number' && Number.isInteger(field) && field >= 400 && field <= 599) {
      const type = anthropicTypeForStatus(field);
      // Read back as 502 by the read-ahead; api_error (500) says "the upstream failed" just as well.
      return type === 'timeout_error' || type === 'request_too_large' || type === 'billing_error'
        ? 'api_error'
        : type;
    }
  }
  for (const field of [error.code, error.type]) {
    const type = TYPE_OF[stringOf(field).toLowerCase()];
    if (type) return type;
  }
  return 'api_error';
}
