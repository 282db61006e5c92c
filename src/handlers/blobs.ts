// GET/HEAD /v2/<name>/blobs/<digest>: from disk when cached, else streamed from the shared download.
import { open, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FileSender } from '../cache/file-sender.ts';
import { parseDigest, type Digest } from '../oci/digest.ts';
import { BLOB_CONTENT_TYPE } from '../oci/media-types.ts';
import { API_VERSION_HEADER, parseRange, type ByteRange } from '../http/respond.ts';
import { header } from '../upstream/registry.ts';
import { upstreamOf, type HandlerContext, type RequestNote } from './context.ts';

export async function handleBlob(
  ctx: HandlerContext,
  route: { upstream: string; repo: string; digest: string },
  req: IncomingMessage,
  res: ServerResponse,
  note: RequestNote,
): Promise<void> {
  const upstream = upstreamOf(ctx, route.upstream);
  const digest = parseDigest(route.digest);
  const head = req.method === 'HEAD';
  const rangeHeader = head ? undefined : req.headers.range;
  note.digest = digest.value;

  if (await serveLocal(ctx, route.upstream, digest, rangeHeader, head, res)) {
    note.result = 'hit';
    return;
  }
  note.result = 'miss';

  if (head) {
    // HEAD never downloads: answer from a download in progress, or ask the upstream with HEAD.
    let size = ctx.blobs.inProgress(digest)?.size;
    if (size === undefined) {
      const up = await upstream.blob('HEAD', route.repo, digest.value);
      await up.body.dump();
      const length = header(up.headers, 'content-length');
      size = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
    }
    res.writeHead(200, blobHeaders(digest, size, undefined));
    res.end();
    return;
  }

  // A download that was passed through (not kept) may finish and close between our await and
  // our attach; then the blob is neither streamable nor stored, and one fresh fetch serves it.
  for (let attempt = 0; attempt < 2; attempt++) {
    const { download, joined } = ctx.blobs.fetch(upstream, route.repo, digest);
    if (joined) note.result = 'joined';
    const size = await download.ready;
    if (size === undefined && rangeHeader !== undefined) {
      // No length from the upstream: a range can only be cut once the blob is complete.
      await download.done;
      if (await serveLocal(ctx, route.upstream, digest, rangeHeader, false, res)) return;
    }
    const range = size === undefined ? undefined : parseRange(rangeHeader, size);
    const end = range ? range.end : size === undefined ? Infinity : size - 1;
    const start = range?.start ?? 0;
    // Decide and attach without an await in between, so the download cannot close its file meanwhile.
    if (!download.canStream) {
      if (await serveLocal(ctx, route.upstream, digest, rangeHeader, false, res)) return;
      continue;
    }
    res.writeHead(range ? 206 : 200, blobHeaders(digest, size, range));
    const sent = (await download.tryStream(res, start, end)) ?? 0;
    ctx.metrics.servedBytes.labels(route.upstream, 'upstream').inc(sent);
    return;
  }
  throw new Error(`blob ${digest.value}: download finished but is neither stored nor streamable`);
}

/** Serves committed content; false when it is not (or no longer) on disk. */
async function serveLocal(
  ctx: HandlerContext,
  upstream: string,
  digest: Digest,
  rangeHeader: string | undefined,
  head: boolean,
  res: ServerResponse,
): Promise<boolean> {
  const path = ctx.blobs.local(digest);
  if (!path) return false;
  // Protected from eviction while this response reads the file.
  const release = ctx.blobs.use(digest);
  let handle: FileHandle;
  try {
    // Open first, then size from the open file: an eviction in between cannot cut the response short.
    handle = await open(path, 'r');
  } catch (err) {
    release();
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  try {
    const { size } = await handle.stat();
    const range = parseRange(rangeHeader, size);
    res.writeHead(range ? 206 : 200, blobHeaders(digest, size, range));
    if (head || size === 0) {
      res.end();
      return true;
    }
    const sent = await new FileSender(handle, res, `blob:${digest.value}`).sendRange(range?.start ?? 0, range?.end ?? size - 1);
    res.end();
    ctx.metrics.servedBytes.labels(upstream, 'cache').inc(sent);
    return true;
  } finally {
    await handle.close().catch(() => undefined);
    release();
  }
}

function blobHeaders(digest: Digest, size: number | undefined, range: ByteRange | undefined): Record<string, string | number> {
  const headers: Record<string, string | number> = {
    ...API_VERSION_HEADER,
    'content-type': BLOB_CONTENT_TYPE,
    'docker-content-digest': digest.value,
    etag: `"${digest.value}"`,
    'accept-ranges': 'bytes',
    'cache-control': 'max-age=31536000',
  };
  if (range && size !== undefined) {
    headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
    headers['content-length'] = range.end - range.start + 1;
  } else if (size !== undefined) {
    headers['content-length'] = size;
  }
  return headers;
}
