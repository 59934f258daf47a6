import type { ChatWrapper } from 'node-llama-cpp';

/**
 * How a chat wrapper writes a function call, as plain text (special tokens as their text): what
 * node-llama-cpp's LlamaChat watches for. `starts` opens the first call (the parallel section's
 * prefix, if any, then the call prefix or one of its alternates); a call is then
 * `name`, `paramsPrefix(name)`, the params JSON and `suffix(name)`; with `parallel`, another call
 * follows as `betweenCalls` and a call prefix, and the section ends with `sectionSuffix`.
 */
export interface CallSyntax {
  starts: string[];
  /** Call prefixes (and alternates) without the section prefix: what opens a call after another. */
  prefixes: string[];
  optionalPrefixSpace: boolean;
  paramsPrefix(name: string): string;
  suffix(name: string): string;
  parallel: boolean;
  betweenCalls: string;
  sectionSuffix: string;
}

type SyntaxPart = Parameters<typeof textOf>[0];

/** A LlamaText (or string) as text; special tokens such as EOS have no text and are left out. */
function textOf(value: string | { readonly values: readonly unknown[] } | undefined): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  return value.values
    .map((item) => {
      if (typeof item === 'string') return item;
      const json = (item as { toJSON?: () => unknown }).toJSON?.() as
        | { type?: string; value?: unknown }
        | undefined;
      return json?.type === 'specialTokensText' && typeof json.value === 'string' ? json.value : '';
    })
    .join('');
}

/** The call syntax of a node-llama-cpp chat wrapper's settings. */
export function callSyntaxOf(wrapper: Pick<ChatWrapper, 'settings'>): CallSyntax {
  const { call, parallelism } = wrapper.settings.functions;
  const prefixes = [call.prefix, ...(call.prefixAlternateMatches ?? [])].map((part) =>
    textOf(part as SyntaxPart),
  );
  const sections = [
    parallelism?.call.sectionPrefix ?? '',
    ...(parallelism?.call.sectionPrefixAlternateMatches ?? []),
  ].map((part) => textOf(part as SyntaxPart));
  const starts = [...new Set(sections.flatMap((section) => prefixes.map((prefix) => section + prefix)))];
  const named = (part: SyntaxPart) => (name: string) => textOf(part).replaceAll('{{functionName}}', name);
  return {
    starts: starts.filter((start) => start !== ''),
    prefixes: [...new Set(prefixes)].filter((prefix) => prefix !== ''),
    optionalPrefixSpace: call.optionalPrefixSpace,
    paramsPrefix: named(call.paramsPrefix as SyntaxPart),
    suffix: named(call.suffix as SyntaxPart),
    parallel: parallelism !== undefined,
    betweenCalls: textOf(parallelism?.call.betweenCalls as SyntaxPart),
    sectionSuffix: textOf(parallelism?.call.sectionSuffix as SyntaxPart),
  };
}
