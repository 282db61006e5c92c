// Hostile input, both sides. Clients: a corpus of malicious and malformed requests sent as raw
// bytes (no client library normalising them first), then a seeded fuzz run; every answer must be
// the right status with OCI error JSON, and the daemon must keep serving. Upstreams: a hostile
// registry answering with oversized or non-JSON manifests, redirect loops, redirects to other
// schemes and to metadata addresses, and a token realm on a metadata address.
// Blobs with more bytes than their Content-Length are written raw past Node's HTTP framing.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { OCI_ERRORS } from '../oci/errors.ts';
import { FakeHub } from '../testing/fake-registry.ts';
import { image, layer, sha256 } from '../testing/fixtures.ts';
import { errorCode, fetchAll, startRegcache, type Harness } from '../testing/harness.ts';
import { isBlockedAddress } from '../upstream/blocked-addresses.ts';

interface Raw {
  status: number;
  headers: string;
  body: string;
}

/** Sends exactly these bytes and reads the answer until the server closes (Connection: close). */
function raw(port: number, request: string | Buffer): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), headers: text.slice(0, split), body: text.slice(split + 4) });
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('timeout')));
    // write, not end: a client that half-closes is not what registries talk to (and Node may then
    // drop the response); Connection: close makes the server close when it has answered.
    socket.write(request);
  });
}

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
  `${method} ${path} HTTP/1.1\r\nHost: cache.test\r\nConnection: close\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;

function ociCode(r: Raw): string | undefined {
  const body = r.headers.toLowerCase().includes('transfer-encoding: chunked') ? r.body.replace(/^[0-9a-f]+\r\n|\r\n[0-9a-f]+\r\n|\r\n0\r\n\r\n$/g, '') : r.body;
  try {
    return (JSON.parse(body) as { errors: Array<{ code: string }> }).errors[0]?.code;
  } catch {
    return undefined;
  }
}

describe('hostile client input', () => {
  let hub: FakeHub;
  let rc: Harness;
  let port: number;
  const img = image({ layers: [layer(10_000, 601)], seed: 601 });
  const blob = img.layers[0]!.digest;

  before(async () => {
    hub = await FakeHub.start();
    hub.addImage('library/app', '1.0.0', img);
    rc = await startRegcache({ upstreams: [{ name: 'docker.io', url: hub.registryUrl, mirror: true }] });
    port = Number(new URL(rc.url).port);
    assert.equal(sha256((await fetchAll(`${rc.url}/v2/app/blobs/${blob}`)).body), blob); // cached, for the range cases
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    await hub?.stop();
  });

  const corpus: Array<[string, string | Buffer, number, string | undefined]> = [
    ['path traversal in the name', get('/v2/../../etc/passwd/manifests/1'), 400, 'NAME_INVALID'],
    ['encoded dot segments', get('/v2/%2e%2e/%2e%2e/etc/manifests/1'), 400, 'NAME_INVALID'],
    ['encoded slash', get('/v2/library%2Fapp/manifests/1.0.0'), 400, 'NAME_INVALID'],
    ['encoded NUL', get('/v2/app%00/manifests/1.0.0'), 400, 'NAME_INVALID'],
    ['raw NUL byte', Buffer.from('GET /v2/app\x00x/manifests/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'latin1'), 400, 'UNSUPPORTED'],
    ['traversal in the digest', get('/v2/app/blobs/sha256:..%2f..%2fetc%2fpasswd'), 400, 'NAME_INVALID'],
    ['dots in the digest', get('/v2/app/blobs/sha256:....'), 400, 'DIGEST_INVALID'],
    ['unknown digest algorithm', get(`/v2/app/blobs/md5:${'a'.repeat(32)}`), 400, 'DIGEST_INVALID'],
    ['short digest', get('/v2/app/blobs/sha256:abc'), 400, 'DIGEST_INVALID'],
    ['upper-case digest hex', get(`/v2/app/blobs/sha256:${'A'.repeat(64)}`), 400, 'DIGEST_INVALID'],
    ['name over 255 characters', get(`/v2/${'a/'.repeat(130)}x/manifests/1`), 400, 'NAME_INVALID'],
    ['upper-case name', get('/v2/Library/App/manifests/1'), 400, 'NAME_INVALID'],
    ['empty path component', get('/v2/library//app/manifests/1'), 400, 'NAME_INVALID'],
    ['tag over 128 characters', get(`/v2/app/manifests/${'t'.repeat(129)}`), 400, 'TAG_INVALID'],
    ['invalid scope', get('/v2/ws/UPPER/app/manifests/1'), 400, 'NAME_INVALID'],
    ['unknown ns', get('/v2/app/manifests/1.0.0?ns=169.254.169.254'), 404, 'NAME_UNKNOWN'],
    ['absurd n', get('/v2/app/tags/list?n=99999999999999'), 400, 'UNSUPPORTED'],
    ['negative n', get('/v2/app/tags/list?n=-1'), 400, 'UNSUPPORTED'],
    ['PUT', get('/v2/app/manifests/1.0.0', { 'content-length': '0' }, 'PUT'), 405, 'UNSUPPORTED'],
    ['POST upload', get('/v2/app/blobs/uploads/', { 'content-length': '0' }, 'POST'), 405, 'UNSUPPORTED'],
    ['DELETE', get(`/v2/app/blobs/${blob}`, {}, 'DELETE'), 405, 'UNSUPPORTED'],
    ['PATCH', get('/v2/app/blobs/uploads/x', { 'content-length': '0' }, 'PATCH'), 405, 'UNSUPPORTED'],
    ['multi-range', get(`/v2/app/blobs/${blob}`, { range: 'bytes=0-1,5-9' }), 416, 'RANGE_INVALID'],
    ['reversed range', get(`/v2/app/blobs/${blob}`, { range: 'bytes=9-1' }), 416, 'RANGE_INVALID'],
    ['range beyond the size', get(`/v2/app/blobs/${blob}`, { range: 'bytes=20000-30000' }), 416, 'RANGE_INVALID'],
    ['malformed range', get(`/v2/app/blobs/${blob}`, { range: 'bytes=abc' }), 416, 'RANGE_INVALID'],
    ['huge header', get('/v2/', { 'x-junk': 'x'.repeat(40_000) }), 431, 'UNSUPPORTED'],
    ['not HTTP at all', 'HELLO THERE\r\n\r\n', 400, 'UNSUPPORTED'],
    ['unknown endpoint', get('/v3/'), 404, 'NOT_FOUND'],
    ['admin without a token configured', get('/admin/v1/storage'), 404, 'NOT_FOUND'],
  ];

  for (const [what, request, status, code] of corpus) {
    it(`answers ${what} with ${status} ${code}`, async () => {
      const r = await raw(port, request);
      assert.equal(r.status, status, `${what}: ${r.headers.split('\r\n')[0]} ${r.body.slice(0, 200)}`);
      assert.equal(ociCode(r), code, `${what}: ${r.body.slice(0, 200)}`);
      assert.match(r.headers.toLowerCase(), /content-type: application\/json/);
    });
  }

  it('keeps serving after the whole corpus, and nothing reached the upstream for refused requests', async () => {
    assert.equal((await fetchAll(`${rc.url}/v2/`)).status, 200);
    assert.equal(sha256((await fetchAll(`${rc.url}/v2/app/blobs/${blob}`)).body), blob, 'the cached blob is intact');
    assert.ok(!hub.requests.some((r) => r.server === 'registry' && (r.path.includes('..') || r.path.includes('%') || r.path.includes('etc'))), 'no hostile path was passed upstream');
  });

  it('survives a seeded fuzz run: right statuses, OCI JSON for every error, no 500s', async () => {
    let seed = 20261124;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const pieces = ['app', 'library', '..', '.', '%2e', '%2F', '%00', 'ws', 'x'.repeat(300), 'ü', '*', '~', 'sha256:', `sha256:${'f'.repeat(64)}`, blob, 'manifests', 'blobs', 'tags', 'list', 'uploads', '1.0.0', 'latest', '', ';', '?ns=', '?n=', '#', '$', 'docker.io', 'ghcr.io'];
    const methods = ['GET', 'GET', 'GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'];
    const ranges = ['bytes=0-0', 'bytes=-5', 'bytes=5-', 'bytes=0-1,2-3', 'bytes=x', 'lines=0-1', `bytes=0-${'9'.repeat(30)}`];
    const allowed = new Set([200, 206, 400, 401, 404, 405, 416, 431, 502, 503]);
    for (let i = 0; i < 300; i++) {
      const path = `/v2/${Array.from({ length: 1 + Math.floor(rand() * 6) }, () => pick(pieces)).join(pick(['/', '/', '/', '']))}`;
      const headers: Record<string, string> = {};
      if (rand() < 0.3) headers['range'] = pick(ranges);
      if (rand() < 0.3) headers['accept'] = pick(['*/*', 'application/vnd.oci.image.index.v1+json', ',,,', 'x'.repeat(1000)]);
      const method = pick(methods);
      const r = await raw(port, get(path.replace(/[\r\n ]/g, ''), headers, method));
      if (r.status === 0) continue; // the parser refused the request line before answering (e.g. CONNECT)
      assert.ok(allowed.has(r.status), `#${i} ${method} ${path} → ${r.status} ${r.body.slice(0, 200)}`);
      if (r.status >= 400 && method !== 'HEAD') {
        const code = ociCode(r);
        assert.ok(code && code in OCI_ERRORS, `#${i} ${method} ${path} → ${r.status} without OCI JSON: ${r.body.slice(0, 200)}`);
      }
    }
    assert.equal((await fetchAll(`${rc.url}/v2/`)).status, 200, 'still serving');
  });
});

describe('hostile upstream answers', () => {
  let hostile: Server;
  let hostileUrl: string;
  let rc: Harness;
  const bigBody = Buffer.alloc(5 * 2 ** 20, 0x20);
  const digest = `sha256:${'e'.repeat(64)}`;
  // A blob answered with more bytes than its Content-Length, written raw past Node's HTTP framing.
  // "short": the declared length cuts the real blob, so the bytes read don't match the digest.
  // "trailing": the declared bytes ARE the blob and garbage follows on the kept-alive connection.
  const overBlob = Buffer.alloc(256 * 1024, 0x41);
  const overDigest = sha256(overBlob);
  const trailing = Buffer.alloc(64 * 1024, 0x42);
  const trailingBlob = Buffer.alloc(128 * 1024, 0x43);
  const trailingDigest = sha256(trailingBlob);

  before(async () => {
    hostile = createServer((req, res) => {
      const path = req.url ?? '';
      if (path === '/v2/' || path === '/v2') return void res.writeHead(200).end('{}');
      if (path.startsWith('/v2/big/manifests/')) {
        return void res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json', 'content-length': bigBody.length }).end(req.method === 'HEAD' ? undefined : bigBody);
      }
      if (path.startsWith('/v2/chunked/manifests/')) {
        // No Content-Length: the limit must hold while reading.
        res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' });
        if (req.method === 'HEAD') return void res.end();
        return void res.end(bigBody);
      }
      if (path.startsWith('/v2/notjson/manifests/')) {
        const body = Buffer.from('<html>not a manifest</html>');
        return void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': body.length }).end(req.method === 'HEAD' ? undefined : body);
      }
      if (path === `/v2/over/blobs/${overDigest}` || path === `/v2/trailing/blobs/${trailingDigest}`) {
        const [declared, body] = path.includes('/over/') ? [overBlob.length - 1000, overBlob] : [trailingBlob.length, Buffer.concat([trailingBlob, trailing])];
        const socket = res.socket!;
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${declared}\r\nconnection: keep-alive\r\n\r\n`);
        socket.write(body);
        return;
      }
      if (path.startsWith('/v2/loop/blobs/')) return void res.writeHead(307, { location: path }).end();
      if (path.startsWith('/v2/ftp/blobs/')) return void res.writeHead(307, { location: 'ftp://example.invalid/blob' }).end();
      if (path.startsWith('/v2/file/blobs/')) return void res.writeHead(307, { location: 'file:///etc/passwd' }).end();
      if (path.startsWith('/v2/metadata/blobs/')) return void res.writeHead(307, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      if (path.startsWith('/v2/metadata6/blobs/')) return void res.writeHead(307, { location: 'http://[fd00:ec2::254]/latest/meta-data/' }).end();
      if (path.startsWith('/v2/realm/')) {
        return void res.writeHead(401, { 'www-authenticate': 'Bearer realm="http://169.254.169.254/token",service="x"' }).end();
      }
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}');
    });
    await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', r));
    hostileUrl = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}`;
    rc = await startRegcache({ upstreams: [{ name: 'evil.test', url: hostileUrl, mirror: true }], limits: { maxManifestSize: '4MiB' } });
  });
  after(async () => {
    await rc?.stop({ wipe: true });
    hostile.closeAllConnections();
    await new Promise((r) => hostile.close(r));
  });

  const cases: Array<[string, string, number, string]> = [
    ['a manifest over the size limit', '/v2/big/manifests/1', 502, 'MANIFEST_INVALID'],
    ['an over-limit manifest without Content-Length', '/v2/chunked/manifests/1', 502, 'MANIFEST_INVALID'],
    ['a non-JSON body for a JSON manifest type', '/v2/notjson/manifests/1', 502, 'MANIFEST_INVALID'],
    ['a redirect loop', `/v2/loop/blobs/${digest}`, 502, 'UPSTREAM_INVALID'],
    ['a redirect to ftp:', `/v2/ftp/blobs/${digest}`, 502, 'UPSTREAM_INVALID'],
    ['a redirect to file:', `/v2/file/blobs/${digest}`, 502, 'UPSTREAM_INVALID'],
    ['a redirect to the cloud metadata address', `/v2/metadata/blobs/${digest}`, 502, 'UPSTREAM_INVALID'],
    ['a redirect to the IPv6 metadata address', `/v2/metadata6/blobs/${digest}`, 502, 'UPSTREAM_INVALID'],
    ['a token realm on the metadata address (never contacted)', '/v2/realm/manifests/1', 403, 'DENIED'],
  ];
  for (const [what, path, status, code] of cases) {
    it(`refuses ${what} with ${status} ${code}, storing nothing`, async () => {
      const r = await fetchAll(`${rc.url}${path}`);
      assert.equal(r.status, status, r.body.toString().slice(0, 300));
      assert.equal(errorCode(r), code);
    });
  }

  it('never answers 200 with the bytes of a blob whose upstream sent more than its Content-Length and stores none of it', async () => {
    const r = await fetchAll(`${rc.url}/v2/over/blobs/${overDigest}`).catch((e: Error) => e);
    if (!(r instanceof Error)) {
      assert.notEqual(r.status, 200, 'a 200 must not complete');
      assert.ok(errorCode(r), 'OCI error JSON');
    }
    assert.ok(!rc.app.index.has(overDigest), 'nothing committed');
  });

  it('takes exactly the declared bytes when garbage trails a correct body, and the poisoned connection is not reused', async () => {
    const r = await fetchAll(`${rc.url}/v2/trailing/blobs/${trailingDigest}`);
    assert.equal(r.status, 200);
    assert.equal(sha256(r.body), trailingDigest);
    assert.equal(r.body.length, trailingBlob.length);
    // The next upstream exchange must still parse: the trailing bytes were not read as its answer.
    const again = await fetchAll(`${rc.url}/v2/notjson/manifests/1`);
    assert.equal(again.status, 502);
    assert.equal(errorCode(again), 'MANIFEST_INVALID');
    assert.ok(rc.app.index.has(trailingDigest), 'the verified blob is cached');
  });

  it('stored nothing else from any of it, and keeps serving', async () => {
    assert.equal(rc.app.index.entryCount, 1, 'only the verified blob of the trailing-garbage case');
    assert.ok(rc.logs.some((l) => l['msg'] === 'token realm points at a link-local or metadata address: refused'), 'the metadata realm was refused, not fetched');
    assert.equal((await fetchAll(`${rc.url}/v2/`)).status, 200);
  });

  it('recognises link-local, unspecified and metadata addresses, IPv4-mapped ones included', () => {
    for (const h of ['169.254.169.254', '[fe80::1]', '::ffff:169.254.1.1', '0.0.0.0', '::', 'fd00:ec2::254', '100.100.100.200']) assert.ok(isBlockedAddress(h), h);
    for (const h of ['127.0.0.1', '10.0.0.1', 'registry-1.docker.io', '[::1]', '2001:db8::1']) assert.ok(!isBlockedAddress(h), h);
  });
});

describe('client limits', () => {
  it('drops a client that trickles its headers (slowloris) and one that sends nothing at all', async () => {
    const rc = await startRegcache({ limits: { headersTimeout: '500ms', clientIdleTimeout: '1s' } });
    try {
      const port = Number(new URL(rc.url).port);
      const closedWithin = (feed: (s: import('node:net').Socket) => void): Promise<{ ms: number; answer: string }> =>
        new Promise((resolve) => {
          const started = Date.now();
          const socket = connect(port, '127.0.0.1');
          let answer = '';
          socket.on('data', (d: Buffer) => (answer += d.toString()));
          socket.on('error', () => undefined);
          socket.on('close', () => resolve({ ms: Date.now() - started, answer }));
          feed(socket);
        });
      const slow = await closedWithin((s) => {
        s.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n');
        const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write('X')), 100);
      });
      assert.ok(slow.ms < 3_000, `slowloris dropped after ${slow.ms} ms`);
      assert.match(slow.answer, /^HTTP\/1\.1 408/);
      const idle = await closedWithin(() => undefined);
      assert.ok(idle.ms >= 400 && idle.ms < 3_000, `idle connection dropped after ${idle.ms} ms`);
      assert.equal((await fetchAll(`${rc.url}/v2/`)).status, 200, 'others are served');
    } finally {
      await rc.stop({ wipe: true });
    }
  });
});
