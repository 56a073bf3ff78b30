/**
 * What the primary and its workers say to each other over the cluster IPC channel (JSON, off the SIP hot
 * path: a few messages per second, plus one per admin request).
 */

/** Backend state a worker reports every SYNC_MS (the primary's admin API and least-calls read it). */
export interface BackendReport {
  id: string
  set: string
  uri: string
  weight: number
  priority: number
  admin: string
  health: string
  activeCalls: number
  source: string
}

export type ToPrimary =
  | { t: 'sipedge:relay-port'; worker: number; port: number }
  /** The worker applied a SIGHUP (errors: it kept its running config). */
  | { t: 'sipedge:reloaded'; worker: number; applied: string[]; restart: string[]; errors?: string[] }
  /** The worker's listeners are bound and it serves. */
  | { t: 'sipedge:started'; worker: number }
  /**
   * `probing`: this worker runs the OPTIONS prober (worker 0 when probing is on), so its health is the others' too.
   * `unready`: why this worker would answer /readyz 503 besides backends and draining (no rtpengine up).
   */
  | { t: 'sipedge:status'; worker: number; backends: BackendReport[]; dialogs: number; draining: boolean; probing: boolean; unready?: string }
  | { t: 'sipedge:answer'; id: number; value: unknown }
  /** A peer opened a connection to this worker (or it closed): other workers send to that peer through it. */
  | { t: 'sipedge:flow'; worker: number; key: string; open: boolean }

export type ToWorker =
  /** Each worker's relay socket (loopback UDP port), by worker number. */
  | { t: 'sipedge:relay-ports'; ports: number[] }
  /**
   * Per backend id: the calls the other workers carry (least-calls across workers), and the health the probing
   * worker found (absent when no worker probes).
   */
  | { t: 'sipedge:others'; calls: Record<string, number>; health?: Record<string, string> }
  /** Connections held by other workers: peer key -> worker (a snapshot replaces, a change updates). */
  | { t: 'sipedge:flows'; snapshot: boolean; flows: Array<[key: string, worker: number | null]> }
  | { t: 'sipedge:ask'; id: number; what: 'setAdmin'; backend: string; state: 'active' | 'draining' }
  | { t: 'sipedge:ask'; id: number; what: 'dialogs'; offset: number; limit: number }
  | { t: 'sipedge:ask'; id: number; what: 'bans'; method: string; path: string; query: string }

/** How often workers report and the primary spreads the least-calls counts. */
export const SYNC_MS = 500

/** Environment of a worker: its number, and the config values the primary settled for all of them. */
export const ENV_INDEX = 'SIPEDGE_WORKER_INDEX'
export const ENV_SETTLED = 'SIPEDGE_WORKER_SETTLED'

export function isMessage<T extends { t: string }>(m: unknown): m is T {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string' && (m as { t: string }).t.startsWith('sipedge:')
}
