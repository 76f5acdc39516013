/** The qkv command: `qkv [options] COMMAND ARGS` or, with no command, a REPL. See qkv-main.ts. */
import * as os from 'node:os';
import { main } from './qkv-main.ts';
import { silenceIpServerNameWarning } from './tls-warnings.ts';

silenceIpServerNameWarning();

process.exitCode = await main({
  argv: process.argv.slice(2),
  env: process.env,
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  interactive: process.stdin.isTTY === true && process.stdout.isTTY === true,
  homeDir: os.homedir(),
  onInterrupt: (handler) => {
    process.on('SIGINT', handler);
    return () => process.off('SIGINT', handler);
  },
});
