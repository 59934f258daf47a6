/**
 * Reads `read` until `done` holds, for state the gateway writes just after an answer went out
 * (usage records, request logs, probes). Gives up after ~15 s, inside the test timeout, and
 * returns the last value, so the test's own assertion says what was missing.
 */
export async function pollUntil<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let attempt = 0; attempt < 1_500 && !done(value); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    value = await read();
  }
  return value;
}
