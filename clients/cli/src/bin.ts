/** The `kv-lease` executable: wires the process (argv, env, stdio, signals) to `run`. */
import { run } from './main';

const controller = new AbortController();
// Ctrl-C or a pipeline's cancel: stop waiting, release what this run holds, exit 130.
const interrupt = (): void => controller.abort(new Error('interrupted'));
process.once('SIGINT', interrupt);
process.once('SIGTERM', interrupt);
// `kv-lease leases list | head -1`: a reader that has gone is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

void run(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  interactive: process.stderr.isTTY === true,
  signal: controller.signal,
}).then((code) => {
  // Exit once stdout is flushed; idle keep-alive sockets must not hold the process open.
  process.stdout.write('', () => process.exit(code));
});
