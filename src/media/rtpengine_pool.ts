// Several rtpengine instances: health by NG ping with thresholds both ways (like the OPTIONS prober),
// weighted selection of the instance that takes a new call, and lookup by a stable instance id so
// that every later command of that call (answer, re-offer, delete) reaches the same instance.
import { createHash } from 'node:crypto'
import { isIP } from 'node:net'
import { NgError, type NgClient, type NgTarget } from './ng_client.js'

export interface RtpengineSpec {
  host: string
  port: number
  /** Share of new calls (smooth weighted round-robin). 0: used only when no weighted instance is usable. */
  weight: number
}

export type MediaHealth = 'up' | 'probing' | 'down'

export class RtpengineInstance implements NgTarget {
  /**
   * Stable short id: 6 base64url chars of SHA-256("udp:host:port"). The same address gives the same id
   * on every edge and across restarts and list reorderings (an index would not), so it can be sealed
   * in the Record-Route token; it names no address in clear.
   */
  readonly id: string
  readonly host: string
  readonly port: number
  weight: number
  /** Starts 'probing' (eligible, not yet confirmed), as backends do. */
  health: MediaHealth = 'probing'
  failStreak = 0
  okStreak = 0
  /** Last ping round trip in ms (undefined before the first answer). */
  lastRttMs: number | undefined
  /** Calls this edge anchored here and has not deleted yet (a local count, for least-loaded views and /metrics). */
  sessions = 0
  /** Removed by a reload: kept reachable for the calls it holds, never selected, never probed. */
  retired = false
  /** nginx smooth weighted round-robin running value. */
  swrrCurrent = 0

  constructor(spec: RtpengineSpec) {
    this.host = spec.host
    this.port = spec.port
    this.weight = spec.weight
    this.id = rtpengineId(spec)
  }

  get eligible(): boolean {
    return this.health !== 'down' && !this.retired
  }

  toString(): string {
    return formatRtpengineSpec(this)
  }
}

export function rtpengineId(spec: { host: string; port: number }): string {
  return createHash('sha256').update(`udp:${spec.host}:${spec.port}`).digest().subarray(0, 4).toString('base64url')
}

export function formatRtpengineSpec(s: { host: string; port: number }): string {
  return `udp:${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`
}

/** Parses `udp:IP:PORT[;weight=N]` (IPv6 in brackets). Throws an Error naming the problem. */
export function parseRtpengineSpec(input: string): RtpengineSpec {
  const s = input.trim()
  const m = /^(?:udp:)?(\[[^\]]*\]|[^:;\s[\]]+):(\d{1,5})((?:;[^;]*)*)$/.exec(s)
  if (m === null) throw new Error(`rtpengine '${input}': expected udp:IP:PORT[;weight=N]`)
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!
  if (isIP(host) === 0) throw new Error(`rtpengine '${input}': '${host}' is not an IP literal`)
  const port = Number(m[2])
  if (port < 1 || port > 65535) throw new Error(`rtpengine '${input}': port out of range`)
  let weight = 1
  for (const param of m[3]!.split(';').slice(1)) {
    const [k, v] = param.split('=', 2)
    if (k?.trim().toLowerCase() !== 'weight' || v === undefined || !/^\d{1,6}$/.test(v.trim())) {
      throw new Error(`rtpengine '${input}': unknown or bad parameter '${param}'`)
    }
    weight = Number(v.trim())
  }
  return { host, port, weight }
}

export interface RtpenginePoolOptions {
  /** Time between ping rounds. Default 5000. */
  intervalMs?: number
  /** A ping not answered within this is a failure. Default 1000. */
  timeoutMs?: number
  /** Consecutive failures before 'down'. Default 3. */
  failThreshold?: number
  /** Consecutive good answers before 'up'. Default 2. */
  okThreshold?: number
  /** Health transitions, for logs and metrics. */
  onChange?: (inst: RtpengineInstance, before: MediaHealth) => void
}

/**
 * The rtpengine instances of one edge. Health signals are pings (every `intervalMs`) and the outcome
 * of real commands reported through `record()`: a timeout is a failure, any reply (even an error
 * reply) proves the instance alive.
 */
export class RtpenginePool {
  private readonly client: NgClient
  private list: RtpengineInstance[] = []
  private readonly byId = new Map<string, RtpengineInstance>()
  private readonly intervalMs: number
  private readonly timeoutMs: number
  readonly failThreshold: number
  readonly okThreshold: number
  private readonly onChange: RtpenginePoolOptions['onChange']
  private readonly inFlight = new Set<RtpengineInstance>()
  private interval: NodeJS.Timeout | undefined
  private running = false

  constructor(client: NgClient, specs: ReadonlyArray<string | RtpengineSpec>, opts: RtpenginePoolOptions = {}) {
    this.client = client
    this.intervalMs = Math.max(1, opts.intervalMs ?? 5000)
    this.timeoutMs = Math.max(1, opts.timeoutMs ?? 1000)
    this.failThreshold = Math.max(1, opts.failThreshold ?? 3)
    this.okThreshold = Math.max(1, opts.okThreshold ?? 2)
    this.onChange = opts.onChange
    this.tick = this.tick.bind(this)
    this.update(specs)
  }

  /** The live (not retired) instances in configuration order. */
  get instances(): readonly RtpengineInstance[] {
    return this.list
  }

  /** The instance with this id, retired ones included (their calls still need answer/delete). */
  get(id: string): RtpengineInstance | undefined {
    return this.byId.get(id)
  }

  /**
   * Replaces the configured list. Instances whose address stays keep their health and counters;
   * removed ones are retired (still found by id for their calls, never selected or probed).
   * Throws on a bad spec or an id collision, leaving the pool unchanged.
   */
  update(specs: ReadonlyArray<string | RtpengineSpec>): void {
    const parsed = specs.map((s) => (typeof s === 'string' ? parseRtpengineSpec(s) : s))
    const next: RtpengineInstance[] = []
    const ids = new Map<string, string>()
    for (const spec of parsed) {
      const id = rtpengineId(spec)
      const addr = formatRtpengineSpec(spec)
      const seen = ids.get(id)
      if (seen === addr) throw new Error(`rtpengine ${addr} listed twice`)
      if (seen !== undefined) throw new Error(`rtpengine ids collide for ${seen} and ${addr}: change a port`)
      ids.set(id, addr)
      let inst = this.byId.get(id)
      if (inst === undefined) {
        inst = new RtpengineInstance(spec)
        this.byId.set(id, inst)
      }
      inst.weight = spec.weight
      inst.retired = false
      next.push(inst)
    }
    for (const inst of this.list) if (!ids.has(inst.id)) inst.retired = true
    this.list = next
  }

  /**
   * Picks the instance for a new call: smooth weighted round-robin over eligible instances not in
   * `exclude` (ids), e.g. the one whose offer just timed out. Undefined when none is usable.
   */
  select(exclude?: ReadonlySet<string>): RtpengineInstance | undefined {
    let total = 0
    let best: RtpengineInstance | undefined
    let fallback: RtpengineInstance | undefined
    for (const inst of this.list) {
      if (!inst.eligible || exclude?.has(inst.id)) continue
      if (inst.weight <= 0) { fallback ??= inst; continue }
      inst.swrrCurrent += inst.weight
      total += inst.weight
      if (best === undefined || inst.swrrCurrent > best.swrrCurrent) best = inst
    }
    if (best === undefined) return fallback
    best.swrrCurrent -= total
    return best
  }

  /**
   * Rendezvous choice for `key` (a Call-ID) among eligible instances: every edge with the same health
   * view picks the same one without talking to the others. For moving a call whose instance died.
   */
  rendezvous(key: string, exclude?: ReadonlySet<string>): RtpengineInstance | undefined {
    let best: RtpengineInstance | undefined
    let bestScore = -1
    for (const inst of this.list) {
      if (!inst.eligible || exclude?.has(inst.id)) continue
      const score = createHash('sha256').update(inst.id).update(key).digest().readUInt32BE(0)
      if (score > bestScore) { best = inst; bestScore = score }
    }
    return best
  }

  /** One health signal with thresholds both ways. */
  record(inst: RtpengineInstance, ok: boolean): void {
    if (inst.retired) return
    const before = inst.health
    if (ok) {
      inst.failStreak = 0
      inst.okStreak++
      if (inst.okStreak >= this.okThreshold) inst.health = 'up'
    } else {
      inst.okStreak = 0
      inst.failStreak++
      if (inst.failStreak >= this.failThreshold) inst.health = 'down'
      else if (before === 'up') inst.health = 'probing'
    }
    if (inst.health !== before) {
      try { this.onChange?.(inst, before) } catch { /* a listener must not break health keeping */ }
    }
  }

  /** Feeds the outcome of a real command: a timeout counts as a failure, any reply as alive. */
  recordOutcome(inst: RtpengineInstance, err: unknown): void {
    if (err === undefined) this.record(inst, true)
    else if (err instanceof NgError && err.kind === 'timeout') this.record(inst, false)
    else if (err instanceof NgError && (err.kind === 'error' || err.kind === 'protocol')) this.record(inst, err.kind === 'error')
  }

  /** Starts ping rounds (one immediately). */
  start(): void {
    if (this.running) return
    this.running = true
    this.interval = setInterval(this.tick, this.intervalMs)
    this.interval.unref()
    this.tick()
  }

  stop(): void {
    this.running = false
    if (this.interval !== undefined) clearInterval(this.interval)
    this.interval = undefined
  }

  /** Pings every live instance once now; resolves when all have answered or timed out. */
  async checkNow(): Promise<void> {
    await Promise.all(this.list.map((inst) => this.ping(inst)))
  }

  private tick(): void {
    if (!this.running) return
    for (const inst of this.list) if (!this.inFlight.has(inst)) void this.ping(inst)
  }

  private async ping(inst: RtpengineInstance): Promise<void> {
    this.inFlight.add(inst)
    try {
      inst.lastRttMs = await this.client.ping(inst, this.timeoutMs)
      this.record(inst, true)
    } catch (err) {
      // Our own client closing says nothing about the instance.
      if (!(err instanceof NgError && (err.kind === 'closed' || err.kind === 'overload'))) this.record(inst, false)
    } finally {
      this.inFlight.delete(inst)
    }
  }
}
