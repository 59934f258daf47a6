// The floor: the cheapest honest Node proxy hop (node:http in, undici keep-alive Pool out, no
// parsing). Whatever it costs, any Node gateway on this machine pays at least that much.
// Env: UPSTREAM_URL (origin, default http://127.0.0.1:9100), PORT (9200), HOST (127.0.0.1).
import http from 'node:http';
import { Pool } from 'undici';

const upstream = new Pool(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:9100', { keepAliveTimeout: 60_000 });
// Hop-by-hop headers (RFC 9110 §7.6.1) are per connection; host and content-length are set by
// undici and node:http for the new connection and body.
const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
  'content-length',
  'expect',
]);
/** @param {Record<string, string | string[] | undefined>} headers */
const forwardable = (headers) =>
  Object.fromEntries(
    Object.entries(headers).filter(([name, value]) => value !== undefined && !NOT_FORWARDED.has(name)),
  );

const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  /** @type {Buffer[]} */
  const parts = [];
  req.on('data', (part) => parts.push(part));
  req.on('end', () => {
    const body = parts.length > 0 ? Buffer.concat(parts) : null; // one write upstream, not a stream
    upstream
      .request({
        method: /** @type {import('undici').Dispatcher.HttpMethod} */ (req.method),
        path: req.url ?? '/',
        headers: forwardable(req.headers),
        body,
      })
      .then(
        (upstreamRes) => {
          res.writeHead(upstreamRes.statusCode, forwardable(upstreamRes.headers));
          upstreamRes.body.pipe(res); // chunk by chunk, so SSE is relayed as it arrives
          upstreamRes.body.on('error', () => res.destroy());
          res.on('close', () => upstreamRes.body.destroy()); // client gone: stop reading upstream
        },
        (error) => {
          res.writeHead(502, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              error: { message: String(error), type: 'server_error', param: null, code: 'upstream_error' },
            }),
          );
        },
      );
  });
});
server.listen(Number(process.env.PORT ?? 9200), process.env.HOST ?? '127.0.0.1');
for (const signal of /** @type {const} */ (['SIGTERM', 'SIGINT'])) process.on(signal, () => process.exit(0));
