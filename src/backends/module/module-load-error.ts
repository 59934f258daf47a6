/** A backend module that cannot be used, found at boot: the message says which and why, in our words. */
export class ModuleLoadError extends Error {
  constructor(backend: string, problem: string, options?: { cause?: unknown }) {
    super(`backends.${backend}: ${problem}`, options);
    this.name = 'ModuleLoadError';
  }
}

/** Several backend modules that cannot be used, found at the same boot: each on a line of its own. */
export class ModuleLoadErrors extends AggregateError {
  constructor(errors: readonly Error[]) {
    super(
      errors,
      `${errors.length} backend modules cannot be used:\n${errors.map((error) => `  - ${error.message}`).join('\n')}`,
    );
    this.name = 'ModuleLoadErrors';
  }
}
