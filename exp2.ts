import sqlite3 from 'sqlite3';
import { mkdirSync, writeFileSync, readdirSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
const N = 1_000_000;
const root = '/var/tmp/rc-exp';
rmSync(root, { recursive: true, force: true });
mkdirSync(root + '/blobs/sha256', { recursive: true });
let t = performance.now();
const db = new sqlite3.Database(root + '/m.sqlite');
const run = (sql: string, ...p: unknown[]) => new Promise<void>((res, rej) => db.run(sql, p, (e) => (e ? rej(e) : res())));
const all = (sql: string) => new Promise<any[]>((res, rej) => db.all(sql, (e, rows) => (e ? rej(e) : res(rows))));
await run('PRAGMA journal_mode=WAL');
await run('CREATE TABLE idx (digest TEXT PRIMARY KEY, size INTEGER, kind INTEGER, seq INTEGER, at INTEGER) WITHOUT ROWID');
await run('BEGIN');
const dirs = new Set<string>();
for (let i = 0; i < N; i++) {
  const hex = randomBytes(32).toString('hex');
  const d = root + '/blobs/sha256/' + hex.slice(0, 2);
  if (!dirs.has(d)) { mkdirSync(d); dirs.add(d); }
  writeFileSync(d + '/' + hex, 'x');
  await run('INSERT INTO idx VALUES (?,?,?,?,?)', 'sha256:' + hex, i % 64 + 1, i % 10 ? 0 : 1, i + 1, Date.now());
}
await run('COMMIT');
console.log('seeded', (performance.now() - t).toFixed(0));
db.close();
