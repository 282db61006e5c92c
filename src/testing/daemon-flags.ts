// The Node flags the daemon runs with, read from package.json's `start` script, where `npm start`
// takes them from. Benchmarks spawn the daemon with the same flags; deployment.test.ts checks that
// the Dockerfile's CMD and main.ts's shebang carry them too.
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
const start = (pkg.scripts.start ?? '').split(/\s+/);

/** For example ['--max-semi-space-size=4'] (why: src/main.ts). */
export const DAEMON_NODE_FLAGS: readonly string[] = start.slice(start.indexOf('node') + 1, start.indexOf('dist/main.js'));
