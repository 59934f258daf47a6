import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { displayWidth } from '../src/cli/display-width.js';
import { runCli } from './support/cli-process.js';
import { type FakeAdminServer, startFakeAdminServer } from './support/fake-admin-server.js';

/** Tables are aligned in terminal columns, not code points: CJK and emoji take two, accents none. */
describe('displayWidth', () => {
  it('counts the columns a terminal draws', () => {
    for (const [text, width] of [
      ['', 0],
      ['research', 8],
      ['研究チーム', 10], // CJK ideographs and katakana: wide
      ['한국어', 6], // Hangul syllables
      ['\u1100\u1161\u11a8', 2], // the same syllable as conjoining jamo: one glyph
      ['ｆｕｌｌ', 8], // fullwidth Latin
      ['ｶﾀｶﾅ', 4], // halfwidth katakana stay narrow
      ['cafe\u0301', 4], // e + combining acute accent
      ['Ångström', 8],
      ['👩‍💻', 2], // emoji joined by ZWJ: one glyph
      ['🇯🇵', 2], // a flag: two regional indicators, one glyph
      ['❤', 1], // text presentation
      ['❤️', 2], // with variation selector 16: emoji presentation
      ['a\u200bb', 2], // zero width space
      ['Ελληνικά', 8],
    ] as const) {
      expect(displayWidth(text), JSON.stringify(text)).toBe(width);
    }
  });
});

describe('tollgate teams list with wide and combining names', () => {
  let server: FakeAdminServer;
  beforeAll(async () => {
    server = await startFakeAdminServer();
    for (const name of ['研究チーム', 'cafe\u0301', '👩‍💻 dev', 'plain']) {
      await fetch(`${server.url}/admin/teams`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name }),
      });
    }
  });
  afterAll(() => server.close());

  it('pads every cell to the same column', async () => {
    const result = await runCli(['teams', 'list'], {
      TOLLGATE_URL: server.url,
      TOLLGATE_ADMIN_KEY: server.adminKey,
    });
    expect(result.code).toBe(0);
    // NAME is 10 columns wide (研究チーム); each name is padded to it, plus the two-space gap.
    expect(result.stdout).toBe(
      [
        'ID         NAME        MODELS   CREATED',
        'team_0001  研究チーム  * (all)  2025-06-15',
        'team_0002  cafe\u0301        * (all)  2025-06-15',
        'team_0003  👩‍💻 dev      * (all)  2025-06-15',
        'team_0004  plain       * (all)  2025-06-15',
        '',
      ].join('\n'),
    );
  });
});
