// `regcache prefetch`: warm the cache for a workshop through the running daemon's admin API
// (POST /admin/v1/prefetch), showing progress as a bar on a terminal and as JSON lines otherwise.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { PrefetchEvent, PrefetchSummary } from '../workshops/prefetch.ts';

const USAGE = `usage: regcache prefetch [--scope S] [--platform os/arch]... [--file F] [ref...]

Resolves each image reference as a pull in scope S would (floating tags get pinned there),
then downloads its manifest(s) and blobs into the cache. Refs: nginx:1.27,
docker.io/library/nginx:latest, ghcr.io/org/app@sha256:...; --file reads one per line (# comments).
Stops early when an upstream's announced pull budget reaches prefetch.reserve.

  --scope S          workshop scope (default: the global scope, which pins nothing)
  --platform P       platform to fetch from multi-arch images (repeatable; default: the daemon's
                     prefetch.platforms, linux/amd64 + linux/arm64)
  --json             JSON lines even on a terminal
  --url, --token     as for regcache admin ($REGCACHE_ADMIN_URL, $REGCACHE_ADMIN_TOKEN)
`;

export async function runPrefetch(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, out: NodeJS.WriteStream = process.stdout): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        scope: { type: 'string' },
        platform: { type: 'string', multiple: true },
        file: { type: 'string' },
        json: { type: 'boolean' },
        url: { type: 'string' },
        token: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out.write(USAGE);
    return 0;
  }
  const refs = [...positionals];
  if (values.file) {
    const text = await readFile(values.file, 'utf8');
    refs.push(...text.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean));
  }
  if (refs.length === 0) {
    process.stderr.write(`no image references given\n\n${USAGE}`);
    return 2;
  }
  const base = values.url ?? env['REGCACHE_ADMIN_URL'] ?? 'http://127.0.0.1:5000';
  const token = values.token ?? env['REGCACHE_ADMIN_TOKEN'];
  const res = await fetch(new URL('/admin/v1/prefetch', base), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ scope: values.scope, refs, platforms: values.platform }),
  });
  if (!res.ok || !res.body) {
    process.stderr.write(`prefetch refused: ${res.status} ${await res.text()}\n`);
    return 1;
  }
  const view = values.json || !out.isTTY ? new JsonLines(out) : new ProgressBar(out);
  let summary: PrefetchSummary | undefined;
  let pending = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (!line) continue;
      const event = JSON.parse(line) as PrefetchEvent;
      view.show(event);
      if (event.event === 'done') summary = event.summary;
    }
  }
  if (!summary) {
    process.stderr.write('prefetch: the daemon closed the stream before the summary\n');
    return 1;
  }
  view.finish(summary);
  return summary.failed > 0 || summary.stopped ? 1 : 0;
}

interface View {
  show(e: PrefetchEvent): void;
  finish(s: PrefetchSummary): void;
}

class JsonLines implements View {
  private readonly out: NodeJS.WritableStream;
  constructor(out: NodeJS.WritableStream) {
    this.out = out;
  }
  show(e: PrefetchEvent): void {
    this.out.write(`${JSON.stringify(e)}\n`);
  }
  finish(): void {
    // the "done" event already carried the summary
  }
}

class ProgressBar implements View {
  private readonly out: NodeJS.WriteStream;
  private refs = 0;
  private images = 0;
  private bytesTotal = 0;
  private bytesDone = 0;
  /** Blobs still to come per ref: an image counts as done when its last blob arrives. */
  private readonly remaining = new Map<string, number>();
  constructor(out: NodeJS.WriteStream) {
    this.out = out;
  }
  show(e: PrefetchEvent): void {
    switch (e.event) {
      case 'start':
        this.refs = e.refs;
        break;
      case 'image':
        this.bytesTotal += e.bytes;
        this.remaining.set(e.ref, e.blobs);
        if (e.blobs === 0) this.images++;
        this.line(`${e.ref} → ${e.digest.slice(0, 19)}${e.pinned ? ' (pinned)' : ''}`);
        break;
      case 'blob':
        this.bytesDone += e.bytes;
        this.remaining.set(e.ref, (this.remaining.get(e.ref) ?? 1) - 1);
        if (this.remaining.get(e.ref) === 0) this.images++;
        break;
      case 'error':
        this.line(`✗ ${e.ref}: ${e.code} ${e.message}`);
        break;
      case 'stopped':
        this.line(`■ stopped before ${e.ref}: ${e.reason}`);
        break;
      case 'done':
        return;
    }
    this.bar();
  }
  finish(s: PrefetchSummary): void {
    this.out.write(`\r\x1b[K${s.images} image(s) ready, ${s.failed} failed${s.skipped ? `, ${s.skipped} skipped` : ''}: ${mib(s.bytes)} in ${s.blobs} blobs, ${mib(s.bytesFetched)} fetched from upstream, ${(s.ms / 1000).toFixed(1)} s\n`);
  }
  private line(text: string): void {
    this.out.write(`\r\x1b[K${text}\n`);
  }
  private bar(): void {
    const width = 30;
    const frac = this.bytesTotal === 0 ? 0 : this.bytesDone / this.bytesTotal;
    const fill = Math.round(frac * width);
    this.out.write(`\r\x1b[K[${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${Math.round(frac * 100)}% ${mib(this.bytesDone)}/${mib(this.bytesTotal)}  ${this.images}/${this.refs} images`);
  }
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}
