// A real upstream for tests: Debian's docker-registry (distribution) on 127.0.0.1, with a request
// counter read from its JSON access log, and a push helper that speaks the registry API.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';
import type { Blob, Image, Manifest, MultiArchImage } from './fixtures.ts';

const run = promisify(execFile);

export interface LoggedRequest {
  readonly method: string;
  readonly uri: string;
  readonly status: number;
}

export class RegistryProcess {
  readonly url: string;
  readonly requests: LoggedRequest[] = [];
  private readonly child: ChildProcess;

  private constructor(url: string, child: ChildProcess) {
    this.url = url;
    this.child = child;
    let pending = '';
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) this.parse(line);
    });
  }

  /** Starts `docker-registry serve` with filesystem storage under `dir`. */
  static async start(dir: string, opts: { proxyRemote?: string } = {}): Promise<RegistryProcess> {
    const port = await freePort();
    await mkdir(join(dir, 'storage'), { recursive: true });
    const config = [
      'version: 0.1',
      'log: {level: info, formatter: json, accesslog: {disabled: true}}',
      `storage: {filesystem: {rootdirectory: ${join(dir, 'storage')}}, delete: {enabled: true}, cache: {blobdescriptor: inmemory}}`,
      `http: {addr: "127.0.0.1:${port}", secret: regcache-test}`,
      ...(opts.proxyRemote ? [`proxy: {remoteurl: "${opts.proxyRemote}"}`] : []),
    ].join('\n');
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, `${config}\n`);
    const child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    const reg = new RegistryProcess(`http://127.0.0.1:${port}`, child);
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}`);
      try {
        const res = await request(`${reg.url}/v2/`);
        await res.body.dump();
        if (res.statusCode === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error('docker-registry did not start within 15 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    reg.requests.length = 0;
    return reg;
  }

  /** Requests logged since the last reset that match method and URI pattern. */
  count(method: string, uri: RegExp): number {
    return this.requests.filter((r) => r.method === method && uri.test(r.uri)).length;
  }

  /** distribution writes the log line after the response; give it a moment to arrive. */
  async settle(): Promise<void> {
    await new Promise((r) => setTimeout(r, 150));
  }

  async pushImage(repo: string, tag: string | undefined, img: Image): Promise<void> {
    for (const blob of img.blobs) await this.pushBlob(repo, blob);
    await this.pushManifest(repo, tag ?? img.manifest.digest, img.manifest);
  }

  /** Pushes with skopeo from a `dir:` layout written to `scratch` (the way an operator would). */
  async pushWithSkopeo(repo: string, tag: string, img: Image, scratch: string): Promise<void> {
    await mkdir(scratch, { recursive: true });
    await writeFile(join(scratch, 'version'), 'Directory Transport Version: 1.1\n');
    await writeFile(join(scratch, 'manifest.json'), img.manifest.data);
    for (const b of img.blobs) await writeFile(join(scratch, b.digest.slice('sha256:'.length)), b.data);
    await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `dir:${scratch}`, `docker://${this.url.slice('http://'.length)}/${repo}:${tag}`]);
  }

  async pushMultiArch(repo: string, tag: string, multi: MultiArchImage): Promise<void> {
    for (const img of multi.images) await this.pushImage(repo, undefined, img);
    await this.pushManifest(repo, tag, multi.index);
  }

  async pushBlob(repo: string, blob: Blob): Promise<void> {
    const start = await request(`${this.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    await start.body.dump();
    const location = start.headers['location'];
    if (start.statusCode !== 202 || typeof location !== 'string') throw new Error(`upload start: ${start.statusCode}`);
    const url = new URL(location, this.url);
    url.searchParams.set('digest', blob.digest);
    const put = await request(url, { method: 'PUT', body: blob.data, headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.data.length) } });
    await put.body.dump();
    if (put.statusCode !== 201) throw new Error(`blob upload ${blob.digest}: ${put.statusCode}`);
  }

  async pushManifest(repo: string, reference: string, manifest: Manifest): Promise<void> {
    const res = await request(`${this.url}/v2/${repo}/manifests/${reference}`, {
      method: 'PUT',
      body: manifest.data,
      headers: { 'content-type': manifest.mediaType },
    });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new Error(`manifest put ${repo}:${reference}: ${res.statusCode} ${text}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }

  private parse(line: string): void {
    if (!line.startsWith('{')) return;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry['msg'] !== 'response completed' || typeof entry['http.request.method'] !== 'string') return;
      this.requests.push({
        method: entry['http.request.method'],
        uri: String(entry['http.request.uri']),
        status: Number(entry['http.response.status']),
      });
    } catch {
      // not a log line of ours
    }
  }
}

/** A port free on 127.0.0.1 right now (for child processes that cannot take port 0). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
