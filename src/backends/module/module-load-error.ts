/** A backend module that cannot be used, found at boot: the message says which and why, in our words. */
export class ModuleLoadError extends Error {
  constructor(backend: string, problem: string, options?: { cause?: unknown }) {
    super(`backends.${backend}: ${problem}`, options);
    this.name = 'ModuleLoadError';
  }
}
