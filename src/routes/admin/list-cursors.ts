import { InvalidCursorError } from '../../errors.js';

/**
 * The shape of each admin list's ids (registry/registry.ts makes them with sortableId: a prefix,
 * then lower-case base36; a key's id is also the `<id>` of its `tg-<id>-<secret>`). An `after`
 * of another shape is no id the list gave out: taken as it is, it would page from wherever it
 * happens to sort (the first page for `after=nope` on teams, nothing at all on keys).
 */
export const TEAM_IDS = /^team_[0-9a-z]{1,64}$/;
export const KEY_IDS = /^[0-9a-z]{8,32}$/;
export const AUDIT_EVENT_IDS = /^aud_[0-9a-z]{1,64}$/;

/**
 * A 400 naming `param` for a cursor that cannot be one of the list's ids. One that has the shape
 * but is gone (a deleted team's) still pages on from where it was.
 */
export function assertCursor(param: string, value: string | undefined, ids: RegExp): void {
  if (value !== undefined && !ids.test(value)) throw new InvalidCursorError(param, value);
}
