import { Backend, parseBackendUri, targetKey } from './backend.js'
import { pick, pickHash, usable, type SetState } from './algorithms.js'
import type { AdminState, Algorithm, BackendSink, BackendSpec, HealthState, SelectContext } from './types.js'

export interface DispatcherOptions {
  algorithm?: Algorithm
  setAlgorithms?: Record<string, Algorithm>
  /** Consecutive failures before a backend is 'down' (Kamailio ds_probing_threshold). Default 3. */
  failThreshold?: number
  /** Consecutive good answers before a backend is 'up' again (ds_inactive_threshold). Default 2. */
  okThreshold?: number
  /** Removed backends remembered (for in-dialog routing and for re-adds keeping health). Default 1024. */
  retiredLimit?: number
}

export type BackendChange = 'added' | 'removed' | 'admin' | 'health'

/** Kamailio-dispatcher-like backend sets: priority groups, selection algorithms, admin and health state. */
export class Dispatcher implements BackendSink {
  onChange?: (b: Backend, what: BackendChange) => void
  /** Set by a running Prober: only then may transaction failures (reportFailure) take a backend down. */
  healthChecked = false
  /** Called when a transaction failed on a backend: the edge wires it to an immediate probe. */
  onSuspect?: (b: Backend) => void
  readonly failThreshold: number
  readonly okThreshold: number

  private defaultAlgorithm: Algorithm
  private setAlgorithms: Record<string, Algorithm>
  private readonly retiredLimit: number
  private readonly sets_ = new Map<string, SetState>()
  /** Every id (discovery may name one address twice) -> its backend. */
  private readonly byId = new Map<string, Backend>()
  /** Backend -> the ids that reference it; it leaves its set when the last one is removed. */
  private readonly idsOf = new Map<Backend, Set<string>>()
  /** `set \n key` -> live backend: the identity of a backend within a set. */
  private readonly bySetKey = new Map<string, Backend>()
  /** key -> live backends with that address (one per set), for byKey and for probing once per address. */
  private readonly byKey_ = new Map<string, Backend[]>()
  /** `set \n key` -> removed backend, oldest first. */
  private readonly retired = new Map<string, Backend>()

  constructor(opts: DispatcherOptions = {}) {
    this.defaultAlgorithm = opts.algorithm ?? 'round-robin'
    this.setAlgorithms = { ...opts.setAlgorithms }
    this.failThreshold = Math.max(1, opts.failThreshold ?? 3)
    this.okThreshold = Math.max(1, opts.okThreshold ?? 2)
    this.retiredLimit = Math.max(0, opts.retiredLimit ?? 1024)
  }

  /**
   * Adds or updates a backend. The same address in the same set is the same backend, whatever the id:
   * re-adding (reload, etcd resync, even after a remove) keeps its health and active-call count.
   * Throws on an invalid URI.
   */
  upsert(spec: BackendSpec): Backend {
    const target = parseBackendUri(spec.uri)
    const key = targetKey(target)
    const sk = `${spec.set}\n${key}`
    const previous = this.byId.get(spec.id)
    if (previous !== undefined && (previous.set !== spec.set || previous.key !== key)) {
      this.remove(spec.id) // the id now names another address: the old backend leaves
    }
    let b = this.bySetKey.get(sk)
    if (b === undefined) {
      b = this.retired.get(sk)
      if (b !== undefined) {
        this.retired.delete(sk)
        b.retired = false
      } else {
        b = new Backend(spec, target)
      }
      this.attach(b)
      this.link(spec.id, b)
      this.update(b, spec)
      this.onChange?.(b, 'added')
      return b
    }
    this.link(spec.id, b)
    const adminBefore = b.admin
    const priorityBefore = b.priority
    this.update(b, spec)
    if (b.priority !== priorityBefore) this.sortSet(b.set)
    if (b.admin !== adminBefore) this.onChange?.(b, 'admin')
    return b
  }

  /** Removes one id. The Backend object stays alive (and findable by key) for dialogs that still use it. */
  remove(id: string): void {
    const b = this.byId.get(id)
    if (b === undefined) return
    this.byId.delete(id)
    const ids = this.idsOf.get(b)!
    ids.delete(id)
    if (ids.size > 0) return
    this.idsOf.delete(b)
    this.detach(b)
    b.retired = true
    const sk = `${b.set}\n${b.key}`
    this.retired.set(sk, b)
    if (this.retired.size > this.retiredLimit) {
      this.retired.delete(this.retired.keys().next().value!)
    }
    this.onChange?.(b, 'removed')
  }

  get(id: string): Backend | undefined {
    return this.byId.get(id)
  }

  /**
   * The backend with this address (as named by a Record-Route parameter). A live backend wins; else a
   * removed one still remembered, so in-dialog requests reach a backend that is leaving.
   */
  byKey(key: string): Backend | undefined {
    const live = this.byKey_.get(key)
    if (live !== undefined) return live[0]
    for (const b of this.retired.values()) if (b.key === key) return b
    return undefined
  }

  /** Live backends with this address, one per set (the prober probes an address once for all). */
  backendsWithKey(key: string): readonly Backend[] {
    return this.byKey_.get(key) ?? []
  }

  /** Live keys (addresses), for the prober. */
  keys(): IterableIterator<string> {
    return this.byKey_.keys()
  }

  backends(set?: string): Backend[] {
    if (set !== undefined) return [...(this.sets_.get(set)?.members ?? [])]
    const out: Backend[] = []
    for (const s of this.sets_.values()) out.push(...s.members)
    return out
  }

  sets(): string[] {
    return [...this.sets_.keys()]
  }

  algorithmOf(set: string): Algorithm {
    return this.setAlgorithms[set] ?? this.defaultAlgorithm
  }

  /** Replaces the default and every per-set algorithm (SIGHUP); sets no longer named fall back to the default. */
  configureAlgorithms(algorithm: Algorithm, perSet: Record<string, Algorithm>): void {
    this.defaultAlgorithm = algorithm
    this.setAlgorithms = { ...perSet }
    for (const [name, s] of this.sets_) s.algorithm = this.algorithmOf(name)
  }

  setAlgorithm(set: string, algorithm: Algorithm): void {
    this.setAlgorithms[set] = algorithm
    const s = this.sets_.get(set)
    if (s !== undefined) s.algorithm = algorithm
  }

  /**
   * Chooses a backend for a new dialog/transaction: the lowest priority value that has a usable
   * backend, then the set's algorithm within that group. `exclude` holds backends already tried
   * (failover). Allocation-free.
   */
  select(set: string, ctx: SelectContext, exclude?: ReadonlySet<Backend>): Backend | undefined {
    return this.selectIn(set, ctx, exclude, undefined)
  }

  /**
   * Affinity by key whatever the set's algorithm (a registration's address-of-record): rendezvous hashing
   * (weighted HRW) over the usable backends of the first priority group that has one. A key moves only when
   * its backend leaves (down, draining, removed); the keys of the others stay where they were.
   */
  selectByKey(set: string, key: string, exclude?: ReadonlySet<Backend>): Backend | undefined {
    return this.selectIn(set, undefined, exclude, key)
  }

  private selectIn(set: string, ctx: SelectContext | undefined, exclude: ReadonlySet<Backend> | undefined, key: string | undefined): Backend | undefined {
    const s = this.sets_.get(set)
    if (s === undefined) return undefined
    const m = s.members
    let from = 0
    while (from < m.length) {
      const prio = m[from]!.priority
      let to = from
      let any = false
      while (to < m.length && m[to]!.priority === prio) {
        if (!any && usable(m[to]!, exclude)) any = true
        to++
      }
      if (any) return key !== undefined ? pickHash(s, from, to, key, exclude) : pick(s, from, to, ctx!, exclude)
      from = to
    }
    return undefined
  }

  callStarted(b: Backend): void {
    b.activeCalls++
  }

  callEnded(b: Backend): void {
    if (b.activeCalls > 0) b.activeCalls--
  }

  /** Operator action (admin API): active, draining (no new calls, dialogs continue), disabled. */
  setAdmin(id: string, admin: AdminState): boolean {
    const b = this.byId.get(id)
    if (b === undefined) return false
    if (b.admin !== admin) {
      b.admin = admin
      this.onChange?.(b, 'admin')
    }
    return true
  }

  /**
   * Health decided elsewhere (worker processes: the worker that probes, through the primary): taken as it is,
   * with the streaks reset so that this process's own signals start from it.
   */
  setHealth(b: Backend, health: HealthState): void {
    if (b.retired || b.health === health) return
    b.health = health
    b.okStreak = 0
    b.failStreak = 0
    this.onChange?.(b, 'health')
  }

  /**
   * A transaction failed on this backend (timeout, 5xx, transport error). That alone never takes it down:
   * under overload the edge's own timeouts would mark every backend down and turn a slowdown into an outage.
   * It becomes 'probing' (still eligible) and `onSuspect` asks the prober to check it now; probes decide.
   */
  reportFailure(b: Backend, why: string): void {
    if (b.retired) return
    b.lastFailure = why
    if (b.health === 'up') {
      b.health = 'probing'
      this.onChange?.(b, 'health')
    }
    this.onSuspect?.(b)
  }

  /** A good answer from the backend (prober, or a transaction the backend answered). */
  reportSuccess(b: Backend): void {
    this.recordHealth(b, true)
  }

  /**
   * Applies one health signal with thresholds both ways: `failThreshold` consecutive failures make it
   * 'down', `okThreshold` consecutive good answers make it 'up'. In between it is 'probing' (still
   * eligible unless it was down).
   */
  recordHealth(b: Backend, ok: boolean, failThreshold = this.failThreshold, okThreshold = this.okThreshold, why?: string): void {
    if (b.retired) return
    if (!ok && why !== undefined) b.lastFailure = why
    const before = b.health
    if (ok) {
      b.failStreak = 0
      b.okStreak++
      if (b.okStreak >= okThreshold) b.health = 'up'
    } else {
      b.okStreak = 0
      b.failStreak++
      if (b.failStreak >= failThreshold) b.health = 'down'
      else if (before === 'up') b.health = 'probing'
    }
    if (b.health !== before) this.onChange?.(b, 'health')
  }

  private update(b: Backend, spec: BackendSpec): void {
    b.uri = spec.uri
    b.weight = spec.weight
    b.priority = spec.priority
    b.admin = spec.admin
    b.source = spec.source
    b.extra = spec.extra // assigned, never deleted: `delete` would turn the object into a slow dictionary
  }

  private link(id: string, b: Backend): void {
    this.byId.set(id, b)
    let ids = this.idsOf.get(b)
    if (ids === undefined) this.idsOf.set(b, (ids = new Set()))
    ids.add(id)
  }

  private attach(b: Backend): void {
    this.bySetKey.set(`${b.set}\n${b.key}`, b)
    const peers = this.byKey_.get(b.key)
    if (peers === undefined) this.byKey_.set(b.key, [b])
    else peers.push(b)
    let s = this.sets_.get(b.set)
    if (s === undefined) {
      s = { name: b.set, algorithm: this.algorithmOf(b.set), members: [], rr: 0 }
      this.sets_.set(b.set, s)
    }
    s.members.push(b)
    this.sortSet(b.set)
  }

  private detach(b: Backend): void {
    this.bySetKey.delete(`${b.set}\n${b.key}`)
    const peers = this.byKey_.get(b.key)
    if (peers !== undefined) {
      const i = peers.indexOf(b)
      if (i >= 0) peers.splice(i, 1)
      if (peers.length === 0) this.byKey_.delete(b.key)
    }
    const s = this.sets_.get(b.set)
    if (s !== undefined) {
      const i = s.members.indexOf(b)
      if (i >= 0) s.members.splice(i, 1)
      if (s.members.length === 0) this.sets_.delete(b.set)
    }
  }

  private sortSet(set: string): void {
    // Array.prototype.sort is stable: equal priorities keep insertion order (round-robin order).
    this.sets_.get(set)?.members.sort((a, c) => a.priority - c.priority)
  }
}
