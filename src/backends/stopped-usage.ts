import { ClientAbortedError } from './transport-failure.js';

/**
 * What a backend's model used for an answer it stopped partway, counted by the backend itself
 * (an in-process model's tokenizer), in OpenAI's names: the prompt tokens it evaluated and the
 * tokens it generated until it stopped. Exact, so the gateway charges it as the backend's usage
 * rather than counting the answer itself (never `estimated`). A type, not an interface: it is
 * usage like any other to the pipeline, whose usage objects take any further field.
 */
export type StoppedUsage = {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
};

/**
 * The client left while the model generated an answer none of which had gone out (not streamed,
 * or a stream still read ahead to its first event): what the model used until it stopped. Still a
 * ClientAbortedError: whatever only asks whether the client left treats it as one.
 */
export class ClientLeftMidAnswerError extends ClientAbortedError {
  constructor(readonly usage: StoppedUsage) {
    super();
  }
}
