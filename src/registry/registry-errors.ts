import { GatewayError } from '../errors.js';

export class TeamNotFoundError extends GatewayError {
  constructor(id: string) {
    super(404, 'invalid_request_error', 'team_not_found', `No team with id '${id}'.`, { param: 'team_id' });
  }
}

export class KeyNotFoundError extends GatewayError {
  constructor(id: string) {
    super(404, 'invalid_request_error', 'key_not_found', `No API key with id '${id}'.`);
  }
}

export class TeamHasActiveKeysError extends GatewayError {
  constructor(id: string, count: number) {
    super(
      409,
      'invalid_request_error',
      'team_has_active_keys',
      `Team '${id}' still has ${count} active key(s); revoke them first or delete with ?force=true.`,
    );
  }
}

export class KeyModelsNotAllowedError extends GatewayError {
  constructor(models: string[], param = 'models') {
    super(
      400,
      'invalid_request_error',
      'model_not_allowed',
      `A key's models must be within its team's; not allowed: ${models.join(', ')}.`,
      { param },
    );
  }
}

/** A team's model_limits may only name models the team may use: a limit on any other binds nothing. */
export class ModelLimitsNotAllowedError extends GatewayError {
  constructor(models: string[]) {
    super(
      400,
      'invalid_request_error',
      'model_not_allowed',
      `model_limits names ${models.length === 1 ? 'a model' : 'models'} the team may not use: ${models
        .map((model) => `'${model}'`)
        .join(', ')}. Add ${models.length === 1 ? 'it' : 'them'} to the team's models, or remove ${
        models.length === 1 ? 'its entry' : 'their entries'
      }.`,
      { param: 'model_limits' },
    );
  }
}

export class KeyRevokedError extends GatewayError {
  constructor(id: string) {
    super(
      409,
      'invalid_request_error',
      'key_revoked',
      `API key '${id}' is revoked; issue a new key instead.`,
    );
  }
}
