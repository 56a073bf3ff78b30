import pino from 'pino'
import { createEdge, type Edge, type EdgeOptions } from '../../src/edge/edge.js'
import { freePort } from './net.js'
import type { Teardownable } from './proc.js'

export const TEST_SECRET = 'test-secret-0123456789abcdef'

export interface TestEdge {
  edge: Edge
  host: string
  port: number
  /** 'host:port' for SIPp's remote address. */
  target: string
}

/**
 * Starts an edge in-process on `host` (UDP and TCP on one free port unless `listen` is given), with
 * probing off and a silent logger unless the options say otherwise. Stopped at teardown.
 */
export async function startEdge(t: Teardownable, host: string, opts: EdgeOptions = {}, port?: number): Promise<TestEdge> {
  const p = port ?? (await freePort(host))
  const edge = await createEdge({
    listen: [`udp:${host}:${p}`, `tcp:${host}:${p}`],
    secret: TEST_SECRET,
    probe: { enabled: false, intervalMs: 1000, timeoutMs: 500, failThreshold: 2, okThreshold: 1 },
    logger: pino({ level: process.env.SIPEDGE_TEST_LOG ?? 'silent' }),
    ...opts,
  })
  await edge.start()
  t.teardown(() => edge.stop())
  return { edge, host, port: p, target: `${host}:${p}` }
}
