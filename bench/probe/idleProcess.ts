/**
 * Does nothing until it is stopped: the benchmark reads the RSS of this script run under
 * `node --import tsx` to tell how much of the gateway's idle RSS is the tsx loader itself.
 */
process.stdout.write('idle\n');
setInterval(() => {}, 60_000);
process.once('SIGTERM', () => process.exit(0));
