// Which way of sending a file from Node is fastest here?
import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);
import { createServer } from 'node:http';
import { createReadStream, openSync, readSync, fstatSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
const FILE = '/tmp/serve-test.bin';
const SIZE = 512 * 2 ** 20;
writeFileSync(FILE, randomBytes(SIZE));
const variants: Record<string, (res: any) => Promise<void>> = {
  pathStream: async (res) => { await pipeline(createReadStream(FILE, { highWaterMark: 1 << 20 }), res); },
  fhStream: async (res) => { const fh = await open(FILE); try { await pipeline(createReadStream('', { fd: fh, highWaterMark: 1 << 20, autoClose: false }), res); } finally { await fh.close(); } },

  fhLoop: async (res) => {
    const fh = await open(FILE);
    try {
      for (let pos = 0; pos < SIZE; ) {
        const buf = Buffer.allocUnsafe(Math.min(1 << 20, SIZE - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        pos += bytesRead;
        if (!res.write(buf)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
    } finally { await fh.close(); }
  },
  fhLoop4M: async (res) => {
    const fh = await open(FILE);
    try {
      for (let pos = 0; pos < SIZE; ) {
        const buf = Buffer.allocUnsafe(Math.min(4 << 20, SIZE - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        pos += bytesRead;
        if (!res.write(buf)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
    } finally { await fh.close(); }
  },
};
for (const hwm of [undefined, 1 << 20]) {
  const server = createServer(hwm ? { highWaterMark: hwm } : {}, (req, res) => {
    const v = variants[(req.url ?? '/').slice(1)]!;
    res.writeHead(200, { 'content-length': SIZE });
    v(res).catch(() => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as any).port;
  for (const name of Object.keys(variants)) {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const out = await new Promise<string>((resolve) => { const { execFile } = require('node:child_process'); execFile('curl', ['-s', '-o', '/dev/null', '-w', '%{time_total}', `http://127.0.0.1:${port}/${name}`], (e: any, so: string) => resolve(so)); });
      times.push(Number(out));
    }
    times.sort();
    console.log(`hwm ${hwm ?? 'default'} ${name.padEnd(12)} ${(SIZE / times[1]! / 1e6).toFixed(0)} MB/s`);
  }
  server.close();
}
