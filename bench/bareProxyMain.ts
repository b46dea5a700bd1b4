import { startBareProxy } from './bareProxy';

/** The bare proxy as its own process: BARE_PROXY_PORT, BARE_PROXY_UPSTREAM, BARE_PROXY_KEY. */
const port = Number(process.env.BARE_PROXY_PORT ?? 0);
const upstream = process.env.BARE_PROXY_UPSTREAM;
const key = process.env.BARE_PROXY_KEY;
if (!upstream || !key) {
  process.stderr.write('bare proxy: BARE_PROXY_UPSTREAM and BARE_PROXY_KEY are required\n');
  process.exit(1);
}
const server = await startBareProxy({ port, upstream, key });
process.stdout.write(`bare proxy listening on ${JSON.stringify(server.address())}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
