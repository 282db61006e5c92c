// A faithful fake Docker Hub on 127.0.0.1: token realm on its own server, Bearer-only registry,
// ratelimit headers that drop with every manifest GET (never with HEAD), 429 TOOMANYREQUESTS when
// the budget is spent, 307 blob redirects to a separate "CDN" server that refuses any request
// carrying Authorization, and fault injection (status codes, truncation, wrong bytes, stalls, pauses).
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Blob, Image, Manifest, MultiArchImage } from './fixtures.ts';

export interface HubRequest {
  readonly server: 'registry' | 'token' | 'cdn';
  readonly method: string;
  readonly path: string;
  readonly authorization: string | undefined;
}

export interface Fault {
  /** Which requests it applies to. */
  readonly match: (r: { method: string; path: string }) => boolean;
  readonly status?: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** Remaining uses; Infinity = until cleared. */
  times: number;
}

export interface BlobBehaviour {
  /** Close the connection after this many body bytes (Content-Length still announces all). */
  truncateAt?: number;
  /** Serve bytes that do not hash to the digest (same length). */
  corrupt?: boolean;
  /** Send this many bytes, then hold until `release()` is called. */
  pauseAt?: number;
  /** Stop sending after this many bytes and never send more (for idle-timeout tests). */
  stallAt?: number;
}

const TOKEN_TTL_SECONDS = 300;

export class FakeHub {
  readonly requests: HubRequest[] = [];
  readonly faults: Fault[] = [];
  /** Pull budget; every manifest GET spends one. */
  limit = 100;
  remaining = 100;
  windowSeconds = 21_600;
  /** Send ratelimit headers (the real Hub omits them for unlimited accounts). */
  rateLimitHeaders = true;
  /** When set, the token server requires these Basic credentials. */
  credentials: { username: string; password: string } | undefined;
  tokenServerDown = false;
  /** While set, every connection to the registry, token and CDN hosts is dropped (an outage). */
  unreachable = false;
  /** Manifest GETs answered 200: what Docker Hub charges as pulls. */
  pullsCharged = 0;
  /** Blob body bytes sent by the CDN. */
  blobBytesSent = 0;
  /** Issued tokens and their expiry (unix ms). */
  private readonly tokens = new Map<string, number>();
  private readonly blobs = new Map<string, Buffer>();
  private readonly manifests = new Map<string, Manifest>();
  private readonly tags = new Map<string, string>();
  private readonly behaviours = new Map<string, BlobBehaviour>();
  private readonly gates = new Set<() => void>();
  private registry!: Server;
  private token!: Server;
  private cdn!: Server;
  registryUrl = '';
  tokenUrl = '';
  cdnUrl = '';

  static async start(): Promise<FakeHub> {
    const hub = new FakeHub();
    hub.registry = createServer((req, res) => hub.onRegistry(req, res));
    hub.token = createServer((req, res) => hub.onToken(req, res));
    hub.cdn = createServer((req, res) => hub.onCdn(req, res));
    hub.registryUrl = await listen(hub.registry);
    hub.tokenUrl = await listen(hub.token);
    hub.cdnUrl = await listen(hub.cdn);
    return hub;
  }

  addImage(repo: string, tag: string | undefined, img: Image): void {
    for (const b of img.blobs) this.addBlob(b);
    this.addManifest(repo, tag, img.manifest);
  }

  addMultiArch(repo: string, tag: string, multi: MultiArchImage): void {
    for (const img of multi.images) this.addImage(repo, undefined, img);
    this.addManifest(repo, tag, multi.index);
  }

  addBlob(blob: Blob): void {
    this.blobs.set(blob.digest, blob.data);
  }

  addManifest(repo: string, tag: string | undefined, manifest: Manifest): void {
    this.manifests.set(manifest.digest, manifest);
    if (tag) this.tags.set(`${repo}:${tag}`, manifest.digest);
  }

  /** Moves a tag (as an upstream push would). */
  setTag(repo: string, tag: string, digest: string): void {
    this.tags.set(`${repo}:${tag}`, digest);
  }

  behave(digest: string, behaviour: BlobBehaviour): void {
    this.behaviours.set(digest, behaviour);
  }

  /** Lets paused blob responses continue. */
  release(): void {
    for (const open of this.gates) open();
    this.gates.clear();
  }

  fail(fault: Omit<Fault, 'times'> & { times?: number }): void {
    this.faults.push({ ...fault, times: fault.times ?? Infinity });
  }

  clearFaults(): void {
    this.faults.length = 0;
    this.behaviours.clear();
  }

  count(server: HubRequest['server'], method: string, path: RegExp): number {
    return this.requests.filter((r) => r.server === server && r.method === method && path.test(r.path)).length;
  }

  reset(): void {
    this.requests.length = 0;
  }

  /** Expires every issued token (the next registry request with one gets 401). */
  expireTokens(): void {
    this.tokens.clear();
  }

  async stop(): Promise<void> {
    this.release();
    for (const s of [this.registry, this.token, this.cdn]) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  }

  private onToken(req: IncomingMessage, res: ServerResponse): void {
    if (this.unreachable) {
      req.socket.destroy();
      return;
    }
    this.requests.push({ server: 'token', method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization });
    if (this.tokenServerDown) {
      res.writeHead(503).end('down');
      return;
    }
    if (this.credentials) {
      const expected = `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"incorrect username or password"}');
        return;
      }
    }
    const token = randomUUID();
    this.tokens.set(token, Date.now() + TOKEN_TTL_SECONDS * 1000);
    json(res, 200, { token, access_token: token, expires_in: TOKEN_TTL_SECONDS, issued_at: new Date().toISOString() });
  }

  private onCdn(req: IncomingMessage, res: ServerResponse): void {
    if (this.unreachable) {
      req.socket.destroy();
      return;
    }
    this.requests.push({ server: 'cdn', method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization });
    if (req.headers.authorization) {
      // What presigned S3/R2 URLs answer when a client forwards registry credentials.
      res.writeHead(400, { 'content-type': 'application/xml' }).end('<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>');
      return;
    }
    const digest = /^\/blobs\/(sha256:[a-f0-9]{64})/.exec(req.url ?? '')?.[1];
    const data = digest ? this.blobs.get(digest) : undefined;
    if (!digest || !data) {
      res.writeHead(404).end();
      return;
    }
    void this.sendBlob(req, res, digest, data);
  }

  private onRegistry(req: IncomingMessage, res: ServerResponse): void {
    if (this.unreachable) {
      req.socket.destroy();
      return;
    }
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    this.requests.push({ server: 'registry', method, path, authorization: req.headers.authorization });
    const base = { 'docker-distribution-api-version': 'registry/2.0' };
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(path);
    const repo = m?.[1] ?? '';
    const challenge = `Bearer realm="${this.tokenUrl}/token",service="registry.docker.io"${repo ? `,scope="repository:${repo}:pull"` : ''}`;
    const auth = req.headers.authorization;
    const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
    const expiry = token ? this.tokens.get(token) : undefined;
    if (!expiry || expiry < Date.now()) {
      res.writeHead(401, { ...base, 'www-authenticate': challenge, 'content-type': 'application/json' });
      res.end(method === 'HEAD' ? undefined : JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: null }] }));
      return;
    }
    if (path === '/v2/' || path === '/v2') {
      json(res, 200, {}, base);
      return;
    }
    const fault = this.faults.find((f) => f.times > 0 && f.match({ method, path }));
    if (fault) {
      fault.times--;
      res.writeHead(fault.status ?? 500, { ...base, ...fault.headers });
      res.end(method === 'HEAD' ? undefined : fault.body ?? '');
      return;
    }
    if (!m) {
      res.writeHead(404, base).end();
      return;
    }
    const [, , kind, reference = ''] = m;
    if (kind === 'manifests') this.serveManifest(res, method, repo, reference, base);
    else this.serveBlobRedirect(res, method, reference, base);
  }

  private serveManifest(res: ServerResponse, method: string, repo: string, reference: string, base: Record<string, string>): void {
    const rateHeaders: Record<string, string> = this.rateLimitHeaders
      ? { 'ratelimit-limit': `${this.limit};w=${this.windowSeconds}`, 'ratelimit-remaining': `${Math.max(0, this.remaining)};w=${this.windowSeconds}`, 'docker-ratelimit-source': '127.0.0.1' }
      : {};
    if (method === 'GET' && this.remaining <= 0) {
      // A GET counts as a pull; HEADs are free and still answered.
      json(res, 429, { errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit' }] }, { ...base, ...rateHeaders, 'retry-after': '60' });
      return;
    }
    const digest = reference.startsWith('sha256:') ? reference : this.tags.get(`${repo}:${reference}`);
    const manifest = digest ? this.manifests.get(digest) : undefined;
    if (!manifest) {
      json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { Tag: reference } }] }, base);
      return;
    }
    if (method === 'GET') {
      this.pullsCharged++;
      this.remaining--;
      if (this.rateLimitHeaders) rateHeaders['ratelimit-remaining'] = `${Math.max(0, this.remaining)};w=${this.windowSeconds}`;
    }
    res.writeHead(200, {
      ...base,
      ...rateHeaders,
      'content-type': manifest.mediaType,
      'content-length': String(manifest.data.length),
      'docker-content-digest': manifest.digest,
    });
    res.end(method === 'HEAD' ? undefined : manifest.data);
  }

  private serveBlobRedirect(res: ServerResponse, method: string, digest: string, base: Record<string, string>): void {
    const data = this.blobs.get(digest);
    if (!data) {
      json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to registry', detail: digest }] }, base);
      return;
    }
    if (method === 'HEAD') {
      res.writeHead(200, { ...base, 'content-length': String(data.length), 'docker-content-digest': digest, 'content-type': 'application/octet-stream' }).end();
      return;
    }
    res.writeHead(307, { ...base, location: `${this.cdnUrl}/blobs/${digest}/data?verify=${Date.now()}-signature`, 'content-length': '0' }).end();
  }

  private async sendBlob(req: IncomingMessage, res: ServerResponse, digest: string, original: Buffer): Promise<void> {
    const b = this.behaviours.get(digest) ?? {};
    let data = original;
    if (b.corrupt) {
      data = Buffer.from(original);
      const i = Math.floor(data.length / 2);
      data[i] = (data[i] ?? 0) ^ 0xff;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(data.length) });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stop = b.truncateAt ?? b.stallAt ?? data.length;
    let pause = b.pauseAt ?? Infinity;
    const chunk = 64 * 1024;
    for (let off = 0; off < stop; ) {
      if (off >= pause) {
        await new Promise<void>((resolve) => this.gates.add(resolve));
        pause = Infinity;
      }
      const end = Math.min(off + chunk, stop, pause);
      const ok = res.write(data.subarray(off, end));
      this.blobBytesSent += end - off;
      off = end;
      if (!ok) await new Promise((r) => res.once('drain', r));
      if (res.destroyed) return;
    }
    if (b.truncateAt !== undefined) res.destroy();
    else if (b.stallAt !== undefined) return; // hold the connection open, send nothing more
    else res.end();
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export function sha256hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
