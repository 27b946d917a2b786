/** Child processes timed from spawn to exit, with the peak resident memory of the process itself. */
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Timed {
  code: number | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  /** Peak RSS in MB (VmHWM), when it could be measured. */
  peakRssMb?: number;
}

const GNU_TIME = '/usr/bin/time';

/** Children still running, so an interrupted bench can stop them (by pid, nothing broader). */
export const running = new Set<number>();

/**
 * Runs argv to completion; never rejects for a failed command. With `measureRss`, the peak RSS
 * comes from GNU time (`%M`, written to a file so the command's stderr stays its own) or, without
 * it, from sampling /proc/PID/status VmHWM (the kernel's own high-water mark) every 20 ms.
 */
export async function timed(
  argv: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; measureRss?: boolean; timeoutMs?: number; stdin?: string } = {},
): Promise<Timed> {
  const useTime = opts.measureRss && existsSync(GNU_TIME);
  const statsFile = useTime ? path.join(os.tmpdir(), `rha-bench-time-${process.pid}-${Date.now()}`) : undefined;
  const full = useTime ? [GNU_TIME, '-f', '%M', '-o', statsFile!, ...argv] : argv;
  let hwmKb = 0;
  const started = performance.now();
  const result = await new Promise<Omit<Timed, 'wallMs' | 'peakRssMb'>>((resolve) => {
    const child = spawn(full[0], full.slice(1), {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (child.pid) running.add(child.pid);
    if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const sampler =
      opts.measureRss && !useTime && child.pid
        ? setInterval(() => {
            fs.readFile(`/proc/${child.pid}/status`, 'utf8').then(
              (t) => {
                const m = /^VmHWM:\s+(\d+) kB/m.exec(t);
                if (m) hwmKb = Math.max(hwmKb, Number(m[1]));
              },
              () => undefined,
            );
          }, 20)
        : undefined;
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (e) => {
      stderr += String(e);
    });
    child.on('close', (code) => {
      if (child.pid) running.delete(child.pid);
      if (sampler) clearInterval(sampler);
      if (timer) clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  const wallMs = performance.now() - started;
  if (statsFile) {
    const text = await fs.readFile(statsFile, 'utf8').catch(() => '');
    await fs.rm(statsFile, { force: true });
    // GNU time writes "Command exited with non-zero status N" before the numbers when it fails.
    const kb = Number(text.trim().split('\n').pop());
    if (Number.isFinite(kb) && kb > 0) hwmKb = kb;
  }
  return { ...result, wallMs, ...(hwmKb > 0 ? { peakRssMb: hwmKb / 1024 } : {}) };
}

/** Throws with the command's output when it failed: for setup steps whose failure ends the bench. */
export function mustSucceed(what: string, r: Timed): Timed {
  if (r.code !== 0) {
    const tail = (r.stdout + r.stderr).trim().split('\n').slice(-25).join('\n');
    throw new Error(`${what} failed (exit ${r.code}):\n${tail}`);
  }
  return r;
}
