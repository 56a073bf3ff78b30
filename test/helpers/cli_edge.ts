// The `sipedge` binary as operators run it: a child process with JSON log lines read back, signals sent by PID.
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnTracked, type Teardownable, type TrackedChild } from './proc.js'

export const CLI = join(fileURLToPath(new URL('../..', import.meta.url)), 'dist/edge/cli.js')

export type LogLine = Record<string, unknown> & { msg?: string; level?: number }

export interface CliEdge {
  proc: TrackedChild
  /** Every JSON log line so far. */
  logs(): LogLine[]
  /** Resolves with the first log line (already written or to come) matching `pred`. */
  waitLog(pred: (l: LogLine) => boolean, timeoutMs?: number, what?: string): Promise<LogLine>
}

/**
 * The end-to-end tests again with worker processes: `SIPEDGE_TEST_WORKERS=2 npx tap test/edge/live_ops.test.ts`
 * runs every edge these tests start as `sipedge --workers 2` (unless a test names --workers itself).
 */
const TEST_WORKERS = process.env.SIPEDGE_TEST_WORKERS

/** Starts `node dist/edge/cli.js ...args` and waits for "sipedge running" (or rejects with its output). */
export async function startCliEdge(t: Teardownable, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliEdge> {
  const withWorkers = TEST_WORKERS !== undefined && !args.includes('--workers') ? [...args, '--workers', TEST_WORKERS] : args
  const proc = spawnTracked(process.execPath, [CLI, ...withWorkers], {
    t,
    env: { ...process.env, SIPEDGE_SECRET: 'cli-edge-test-secret-0123', ...env },
  })
  const edge = watch(proc)
  await edge.waitLog((l) => l.msg === 'sipedge running (SIGTERM/SIGINT drain, SIGHUP reloads)', 20_000, 'sipedge running')
  return edge
}

/** Log lines of a process that writes pino JSON on stdout. */
export function watch(proc: TrackedChild): CliEdge {
  const lines: LogLine[] = []
  const waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = []
  let partial = ''
  proc.child.stdout?.on('data', (chunk: Buffer | string) => {
    const parts = (partial + chunk.toString()).split('\n')
    partial = parts.pop() ?? ''
    for (const text of parts) {
      let l: LogLine
      try {
        l = JSON.parse(text) as LogLine
      } catch {
        continue
      }
      lines.push(l)
      for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i]!.pred(l)) waiters.splice(i, 1)[0]!.resolve(l)
    }
  })
  return {
    proc,
    logs: () => lines,
    waitLog(pred, timeoutMs = 5000, what = 'a log line') {
      const found = lines.find(pred)
      if (found) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const { stderr } = proc.output()
          reject(new Error(`no ${what} within ${timeoutMs} ms; exit ${proc.exitCode()}; stderr: ${stderr.slice(-500)}`))
        }, timeoutMs)
        const onExit = proc.exited.then((code) => {
          clearTimeout(timer)
          reject(new Error(`exited ${code} before ${what}; stderr: ${proc.output().stderr.slice(-800)}`))
        })
        void onExit
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer)
            resolve(l)
          },
        })
      })
    },
  }
}

/** Samples of one metric from an edge's /metrics (with workers: the primary's, summed over them by AggregatorRegistry). */
export async function metricSamples(admin: number, name: string): Promise<Array<{ labels: string; value: number }>> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text()
  const out: Array<{ labels: string; value: number }> = []
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    const m = /^[a-z_]+(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line)
    if (m) out.push({ labels: m[1] ?? '', value: Number(m[2]) })
  }
  return out
}
