/** A store the gateway cannot start on: the setting, which store and why, in our words. */
export class StoreStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreStartError';
  }
}
