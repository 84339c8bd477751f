import { runCli } from './cli/program.ts';

/* Entry point of the `scheduler` command (npm start runs `scheduler start`). */
const code = await runCli(process.argv.slice(2), {
  env: process.env,
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
});
process.exitCode = code;
// Anything left open (a stray timer, a socket) must not keep a finished command alive.
setTimeout(() => process.exit(code), 1000).unref();
