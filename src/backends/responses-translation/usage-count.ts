import type { Json } from '../../json-values.js';
import { GeneratedTextCount } from '../../usage/generated-text-count.js';
import { estimatePromptTokens } from '../../usage/token-estimate.js';
import { countedResponseUsage, responseUsage } from './response-object.js';

/**
 * Usage for an answer whose backend reported none (a module, a local server that ignores
 * `include_usage`), or reported usage that is not counts of both the prompt and the output
 * (responseUsage): the gateway charges its own count then, and the Response says the same count
 * rather than `null`, as the Messages translation and the chat path do. `counted` tells the
 * gateway (BackendResponse.usageCounted) to record it as estimated.
 */
export class UsageCount {
  readonly counted = { usage: false };
  private inputTokens: number | undefined;
  private readonly generated = new GeneratedTextCount();

  /** `request`: the Responses request as the client sent it. */
  constructor(private readonly request: Json) {}

  /** Text the model generated (content, refusal, tool call names and arguments), as it comes. */
  add(text: string): void {
    this.generated.add(text);
  }

  /** The reported usage in the Responses names, else the gateway's count (and counted says so). */
  usageOf(reported: unknown): Json {
    const usage = responseUsage(reported);
    if (usage) return usage;
    this.counted.usage = true;
    return countedResponseUsage(this.countInput(), this.generated.tokens());
  }

  /**
   * The prompt as the gateway counts a Responses request for its reservation: the figure it
   * would charge for an answer without usage, so the Response and the usage record agree with
   * what the gateway counted before the Response carried it.
   */
  private countInput(): number {
    this.inputTokens ??= estimatePromptTokens('responses', this.request);
    return this.inputTokens;
  }
}
