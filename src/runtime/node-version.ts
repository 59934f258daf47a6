/**
 * The oldest Node.js the gateway runs on (undici 8 and the test runner need 22). Entry points
 * check it before importing anything else: on an older Node the imports themselves crash deep
 * inside a dependency, with nothing that says why.
 */
export const MIN_NODE_MAJOR = 22;

export function assertSupportedNode(program: string): void {
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= MIN_NODE_MAJOR) return;
  process.stderr.write(
    `${program} needs Node.js >= ${MIN_NODE_MAJOR}; this is Node.js ${process.version}. ` +
      'In a checkout, `npm start` and `npx tollgate` use the Node 24 that `npm ci` installs for the project ' +
      '(the `node` dev dependency); otherwise install Node 22 or newer (https://nodejs.org, nvm install 24, ' +
      'or the official image node:24).\n',
  );
  process.exit(1);
}
