// Resident memory of a process, from /proc (Linux): what the soak test and the benchmarks report.
import { readFile } from 'node:fs/promises';

/** VmRSS of `pid` in MiB; throws if the process is gone. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}
