/**
 * Where each parameter of a translated chat request came from in the Responses request. An error
 * the chat side raises names its own parameters (`max_tokens`, `messages[2].content[1]`, a part
 * of type `image_url`), which the client never sent: this is the one mapping back to the names
 * it did send (`max_output_tokens`, `input[3].content[1]`, `input_image`), for an error's `param`
 * and for the names its message quotes.
 */

/** What one chat message was made from. */
export interface MessageOrigin {
  /** The Responses path it came from: an item (`input[3]`), or a whole string (`input`, `instructions`). */
  path: string;
  /**
   * `text`: a bare string, all of it is `path`; `message`: a message item, whose content parts
   * keep their indexes; `tool_output`: a function_call_output item.
   */
  kind: 'text' | 'message' | 'tool_output';
  /** The function_call items this assistant turn carries, by their `tool_calls` index. */
  calls: string[];
}

/** A path's first name and the rest (`messages` and `[2].content`). */
const HEAD = /^([A-Za-z_]+)(.*)$/s;
const INDEXED = /^\[(\d+)\](.*)$/s;
/** A path as error messages quote it: a chat parameter, with its indexes and fields. */
const QUOTED_PATH =
  /(?<![\w.[\]])(?:messages\[\d+\]|tools\[\d+\]|tool_choice|response_format)(?:\.[A-Za-z_]\w*|\[\d+\])*|(?<![\w.])(?:max_tokens|max_completion_tokens|reasoning_effort|stream_options)(?![\w[])/g;
/** The bare name of the message list, where it is quoted (prose says "messages" too). */
const QUOTED_MESSAGES = /(['"`])messages\1/g;
/** A chat content part's type where a message names it (`got a 'image_url' part`). */
const QUOTED_PART_TYPE =
  /\b([Aa]n? )?(['"`])(image_url|file)\2(?=\s+(?:content\s+)?part\b)|(\btype:?\s*)(['"`])(image_url|file)\5/g;
const PART_TYPES: Readonly<Record<string, string>> = { image_url: 'input_image', file: 'input_file' };

/** Chat's fields of a content part (`.image_url.url`, `.file.file_data`) as the Responses part's. */
function partPath(rest: string): string {
  return rest
    .replace(/^(\.content\[\d+\])\.image_url\.url(?![\w[])/, '$1.image_url')
    .replace(/^(\.content\[\d+\])\.(?:image_url|file)\.(\w+)/, '$1.$2')
    .replace(/^(\.content\[\d+\])\.file(?![\w[])/, '$1');
}

/** A tool call's fields (`.id`, `.function.arguments`) as the function_call item's. */
function callPath(rest: string): string {
  return rest.replace(/^\.id(?![\w[])/, '.call_id').replace(/^\.function(?=\.|$)/, '');
}

export class ChatParamPaths {
  /** `origins[k]` is where chat message k came from. */
  constructor(private readonly origins: readonly MessageOrigin[] = []) {}

  /** The Responses path for a chat parameter path; null stays null, an unknown path as it is. */
  param(chatParam: string | null): string | null {
    if (chatParam === null) return null;
    const match = HEAD.exec(chatParam);
    if (!match) return chatParam;
    const [, head = '', rest = ''] = match;
    switch (head) {
      case 'messages':
        return this.messagePath(rest);
      case 'max_tokens':
      case 'max_completion_tokens':
        return 'max_output_tokens';
      case 'tools':
        // Chat nests a function tool's fields under `function`; Responses has them flat.
        return `tools${rest.replace(/^(\[\d+\])\.function(?=\.|$)/, '$1')}`;
      case 'tool_choice':
        return `tool_choice${rest.replace(/\.(?:allowed_tools|function)(?=\.|\[|$)/g, '')}`;
      case 'response_format':
        return `text.format${rest.replace(/^\.json_schema(?=\.|$)/, '')}`;
      case 'reasoning_effort':
        return 'reasoning.effort';
      case 'verbosity':
        return 'text.verbosity';
      case 'stream_options':
        return 'stream';
      default:
        return chatParam;
    }
  }

  /** An error message with the chat names it quotes replaced by the Responses request's. */
  text(message: string): string {
    return message
      .replace(QUOTED_PATH, (path) => this.param(path) ?? path)
      .replace(QUOTED_MESSAGES, '$1input$1')
      .replace(
        QUOTED_PART_TYPE,
        (
          _all,
          article: string | undefined,
          quote: string | undefined,
          type: string | undefined,
          label: string | undefined,
          labelQuote: string | undefined,
          labelType: string | undefined,
        ) => {
          if (label !== undefined) return `${label}${labelQuote}${PART_TYPES[labelType ?? '']}${labelQuote}`;
          // Both Responses names start with a vowel: "a 'image_url'" becomes "an 'input_image'".
          const an = article === undefined ? '' : `${article.startsWith('A') ? 'An' : 'an'} `;
          return `${an}${quote}${PART_TYPES[type ?? '']}${quote}`;
        },
      );
  }

  /** `messages` and what follows it (`[2].content[1]`). */
  private messagePath(rest: string): string {
    const indexed = INDEXED.exec(rest);
    const origin = indexed ? this.origins[Number(indexed[1])] : undefined;
    if (!indexed || !origin) return 'input';
    const inner = indexed[2] ?? '';
    if (origin.kind === 'text' || inner === '') return origin.path;
    const call = /^\.tool_calls(?:\[(\d+)\](.*))?$/s.exec(inner);
    if (call) {
      const path = call[1] === undefined ? undefined : origin.calls[Number(call[1])];
      return path === undefined ? origin.path : `${path}${callPath(call[2] ?? '')}`;
    }
    if (origin.kind === 'tool_output') {
      if (/^\.tool_call_id(?![\w[])/.test(inner)) return `${origin.path}.call_id`;
      if (inner.startsWith('.content')) return `${origin.path}.output${inner.slice('.content'.length)}`;
      return origin.path;
    }
    // An assistant's refusal was a part of its content.
    if (/^\.refusal(?![\w[])/.test(inner)) return `${origin.path}.content`;
    if (/^\.(?:content|role)(?![\w])/.test(inner)) return `${origin.path}${partPath(inner)}`;
    return origin.path;
  }
}
