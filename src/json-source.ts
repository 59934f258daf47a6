/** JSON.rawJSON (Node 22+; not in TypeScript's lib yet). */
export const sourceJson = JSON as JSON & {
  rawJSON(text: string): unknown;
  isRawJSON(value: unknown): boolean;
};

/** The text a JSON.rawJSON value holds. */
export function rawTextOf(value: unknown): string {
  return (value as { rawJSON: string }).rawJSON;
}
