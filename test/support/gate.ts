/**
 * A gate a fake server waits at until the test opens it: the test decides when an answer goes
 * on, instead of the server sleeping for a while and the test hoping it was long enough.
 */
export class Gate {
  /** Resolves once the gate is open (at once, from then on). */
  readonly opened: Promise<void>;
  private release: () => void = () => {};

  constructor() {
    this.opened = new Promise<void>((resolve) => {
      this.release = resolve;
    });
  }

  open(): void {
    this.release();
  }
}
