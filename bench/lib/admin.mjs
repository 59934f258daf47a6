// The benchmark's one way to make a team and a key in a gateway under test (its admin API).

/**
 * POST /admin/teams, then POST /admin/keys in that team.
 * @param {string} origin
 * @param {string} adminKey
 * @param {object} teamBody
 * @param {object} keyBody without team_id
 * @returns {Promise<{ key: string, keyId: string, teamId: string }>}
 */
export async function createTeamAndKey(origin, adminKey, teamBody, keyBody) {
  const admin = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
  const team = await (
    await fetch(`${origin}/admin/teams`, { method: 'POST', headers: admin, body: JSON.stringify(teamBody) })
  ).json();
  if (typeof team.id !== 'string') throw new Error(`could not create a bench team: ${JSON.stringify(team)}`);
  const key = await (
    await fetch(`${origin}/admin/keys`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ ...keyBody, team_id: team.id }),
    })
  ).json();
  if (typeof key.key !== 'string') throw new Error(`could not create a bench key: ${JSON.stringify(key)}`);
  return { key: key.key, keyId: key.id, teamId: team.id };
}
