/** JSON.parse's source text access and JSON.rawJSON (Node 22+; not in TypeScript's lib yet). */
export const sourceJson = JSON as JSON & {
  rawJSON(text: string): unknown;
  isRawJSON(value: unknown): boolean;
  parse(
    text: string,
    reviver: (this: unknown, key: string, value: unknown, context: { source?: string }) => unknown,
  ): unknown;
};
