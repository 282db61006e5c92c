import sqlite3 from 'sqlite3';
const root = '/var/tmp/rc-exp';
global.gc?.();
const rss0 = process.memoryUsage().rss;
let t = performance.now();
const db = new sqlite3.Database(root + '/m.sqlite');
const all = (sql: string, ...p: unknown[]) => new Promise<any[]>((res, rej) => db.all(sql, p, (e, rows) => (e ? rej(e) : res(rows))));
const [{ s }] = await all("SELECT group_concat(digest || ' ' || size || ' ' || kind || ' ' || seq, ' ') AS s FROM idx");
console.log('group_concat', s.length, (performance.now() - t).toFixed(0), 'ms');
t = performance.now();
const parts = s.split(' ');
console.log('split', parts.length, (performance.now() - t).toFixed(0), 'ms', ((process.memoryUsage().rss - rss0) / 2 ** 20).toFixed(0), 'MiB');
t = performance.now();
// chunked by seq
let total = 0;
for (let lo = 0; ; lo += 100000) {
  const [{ s }] = await all("SELECT group_concat(digest || ' ' || size || ' ' || kind || ' ' || seq, ' ') AS s FROM (SELECT * FROM idx WHERE seq > ? AND seq <= ?)", lo, lo + 100000);
  if (!s) break;
  total += s.split(' ').length;
}
console.log('chunked', total, (performance.now() - t).toFixed(0), 'ms');
