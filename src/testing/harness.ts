// Starts regcache in-process on 127.0.0.1:0 over a scratch storage root, with its log captured.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { request } from 'undici';
import { createApp, type App } from '../app.ts';
import { buildConfig } from '../config/load.ts';
import { createLogger } from '../observability/logger.ts';

export interface Harness {
  readonly app: App;
  readonly url: string;
  readonly root: string;
  /** Every log line written so far, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  /** Raw log text (for "never appears in logs" assertions). */
  logText(): string;
  /** Stops the app; the storage root is kept unless `wipe`. */
  stop(opts?: { wipe?: boolean }): Promise<void>;
}

export async function startRegcache(config: Record<string, unknown>, opts: { root?: string; defaultMetrics?: boolean } = {}): Promise<Harness> {
  const root = opts.root ?? (await mkdtemp(join(tmpdir(), 'regcache-test-')));
  const lines: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        lines.push(line);
        logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  const storage = { ...((config['storage'] as Record<string, unknown> | undefined) ?? {}), root };
  const cfg = buildConfig({ listen: '127.0.0.1:0', log: { level: 'debug' }, shutdownTimeout: '5s', ...config, storage });
  const app = await createApp(cfg, { logger: createLogger(cfg.log.level, sink), defaultMetrics: opts.defaultMetrics ?? false });
  const { port } = await app.listen(0);
  return {
    app,
    url: `http://127.0.0.1:${port}`,
    root,
    logs,
    logText: () => lines.join('\n'),
    async stop({ wipe = false } = {}) {
      await app.close();
      if (wipe) await rm(root, { recursive: true, force: true });
    },
  };
}

export interface Fetched {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

/** One request; resolves with the whole body, rejects if the transfer breaks off. */
export async function fetchAll(url: string, opts: { method?: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE'; headers?: Record<string, string> } = {}): Promise<Fetched> {
  const res = await request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

export function errorCode(f: Fetched): string | undefined {
  return (JSON.parse(f.body.toString('utf8')) as { errors: Array<{ code: string }> }).errors[0]?.code;
}
