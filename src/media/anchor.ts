// The media policy the proxy calls between routing and relay: anchor the SDP of a call in rtpengine so
// that SDP and RTP on each side name only rtpengine's interface for that side.
//
// How the proxy is meant to call it (offer/answer are UDP round trips, so the message is held):
// - A request with SDP (INVITE, UPDATE, re-INVITE from either side): the server transaction is created
//   and the 100 Trying sent BEFORE the offer goes out. Retransmissions of the request then match that
//   transaction and are absorbed by it, so one transaction issues one offer. The transaction keeps the
//   rewritten body: every failover branch reuses it (an offer belongs to the call and the offerer's tag,
//   not to a branch; a second backend only brings another to-tag with its answer).
// - A response with SDP (18x, 2xx): answer; the response waits in its client transaction until the
//   answer is back, and later responses of the same transaction queue behind it (a 200 must not overtake
//   its 183). 2xx retransmissions, forwarded outside the transaction, call answer() again: identical
//   requests in flight are coalesced here, and rtpengine answers an identical repeat with the same SDP,
//   so every copy the caller gets carries the same media address.
// - Late offer (SDP first in the 2xx, answer in the ACK): offer from the response, answer from the ACK;
//   `ngTags()` maps the From/To tags to offerer/answerer for each case.
// - BYE, CANCEL, the final failure of an INVITE after failover: delete(), after relaying, never delaying
//   the signalling. A CANCEL that arrives while the offer is still pending marks the transaction; when the
//   offer completes, the proxy deletes instead of relaying.
// - The instance that took the offer goes into the Record-Route token (`MediaResult.instance`, 6 chars),
//   so any edge with the secret sends the answer, re-offers and the delete of that call to it.
import type { Side } from '../transport/types.js'
import type { BInput } from './bencode.js'
import { NgError, type NgClient } from './ng_client.js'
import type { RtpengineInstance, RtpenginePool } from './rtpengine_pool.js'
import { findSdp } from './sdp_body.js'

export interface MediaCall {
  callId: string
  /** The tag of the party whose SDP is the offer (NG `from-tag`). */
  offererTag: string
  /** The tag of the answering party (NG `to-tag`); required for answer. */
  answererTag?: string
  /** NG `via-branch`: tells forked branches apart; not needed for serial failover. */
  viaBranch?: string
}

/**
 * NG tags from a SIP message's From/To tags. In a request with an offer the offerer is the sender
 * (From); in a response with an offer (late offer in a 2xx) the offerer is the UAS (To). The answer
 * mirrors it: a response's answer comes from To, an ACK's answer from From.
 */
export function ngTags(kind: 'offer' | 'answer', inRequest: boolean, fromTag: string, toTag: string | undefined): { offererTag: string; answererTag: string | undefined } {
  const offererIsFrom = kind === 'offer' ? inRequest : !inRequest
  return offererIsFrom ? { offererTag: fromTag, answererTag: toTag } : { offererTag: toTag ?? '', answererTag: fromTag }
}

export type FailurePolicy = 'reject' | 'passthrough'

/**
 * Which ends of one offer/answer are browsers (SIP over WebSocket: ICE, DTLS-SRTP, AVPF, rtcp-mux). Toward a
 * browser rtpengine must speak WebRTC; toward a plain end of a call that has a browser on the other end, plain
 * RTP without ICE or crypto, so that Asterisk's plain endpoint takes it.
 */
export interface WebrtcEnds {
  from: boolean
  to: boolean
}

// NG keys per profile of the receiving end. DTLS is left to rtpengine: it takes `a=setup:active` toward a
// browser offer and starts the handshake itself (forcing `DTLS: passive` leaves the browser's DTLS stuck).
const TOWARD_BROWSER_OFFER: Readonly<Record<string, BInput>> = Object.freeze({ ICE: 'force', 'transport-protocol': 'UDP/TLS/RTP/SAVPF', 'rtcp-mux': ['offer'] })
const TOWARD_BROWSER_ANSWER: Readonly<Record<string, BInput>> = Object.freeze({ ICE: 'force', 'transport-protocol': 'UDP/TLS/RTP/SAVPF', 'rtcp-mux': ['require'] })
const TOWARD_PLAIN: Readonly<Record<string, BInput>> = Object.freeze({ ICE: 'remove', DTLS: 'off', SDES: ['off'], 'transport-protocol': 'RTP/AVP', 'rtcp-mux': ['demux'] })

/** Extra NG keys per backend set (e.g. `{ flags: ['codec-strip-all'], 'transport-protocol': 'RTP/AVP' }`). */
export interface MediaExtra {
  flags?: string[]
  [key: string]: BInput | undefined
}

export interface MediaAnchorOptions {
  client: NgClient
  pool: RtpenginePool
  /** rtpengine interface names per side (rtpengine's `--interface=NAME/IP`). Default external / internal. */
  interfaces?: { public?: string; internal?: string }
  /** When no rtpengine can anchor the SDP. Default 'reject'. */
  onFailure?: FailurePolicy
  /** Status the proxy answers with under 'reject'. Default 503. */
  rejectStatus?: number
  /** NG `replace` for every offer/answer. Default ['origin', 'session-connection']. */
  replace?: string[]
  /** NG `ICE` toward the internal side (backends do not do ICE). Default 'remove'; '' sends none. */
  iceInternal?: string
  /** Extra NG keys for every offer/answer. */
  extra?: MediaExtra
  /** Instances tried for a new call when an offer times out. Default 2. */
  maxOfferAttempts?: number
  /** Timeout of one NG command, retransmissions included. Default: the client's. */
  timeoutMs?: number
  /** When the instance named for a call is down or unknown: move to a rendezvous choice (true, default) or fail. */
  migrateOnDown?: boolean
  /** One call per outcome, for metrics and logs. */
  onEvent?: (ev: MediaEvent) => void
}

export interface MediaEvent {
  command: 'offer' | 'answer' | 'delete'
  outcome: 'anchored' | 'passthrough' | 'reject' | 'deleted' | 'delete-failed'
  callId: string
  instance: string | undefined
  reason?: string
}

export type MediaResult =
  /** Relay `sdp` in place of the original; `instance` goes into the token (a new call) or stays. */
  | { action: 'anchored'; sdp: Buffer; instance: string; migrated: boolean }
  /** Relay the original SDP unchanged (policy passthrough). */
  | { action: 'passthrough'; reason: string; instance: string | undefined }
  /** Answer the request with `status` (policy reject), or end the call when this was an answer. */
  | { action: 'reject'; status: number; reason: string; instance: string | undefined }

export type BodyResult =
  | { action: 'unchanged' }
  | (MediaResult & { action: 'passthrough' | 'reject' })
  | { action: 'anchored'; body: Buffer; contentLength: number; instance: string; migrated: boolean }

interface InFlight { sdp: Buffer; promise: Promise<MediaResult> }

export class MediaAnchor {
  private readonly client: NgClient
  readonly pool: RtpenginePool
  private readonly ifPublic: string
  private readonly ifInternal: string
  readonly onFailure: FailurePolicy
  private readonly rejectStatus: number
  private readonly replace: string[]
  private readonly iceInternal: string | undefined
  private readonly extra: MediaExtra | undefined
  private readonly maxOfferAttempts: number
  private readonly timeoutMs: number | undefined
  private readonly migrateOnDown: boolean
  private readonly onEvent: MediaAnchorOptions['onEvent']
  private readonly inFlight = new Map<string, InFlight>()
  /** NG `direction` for (public, public), (public, internal), (internal, public), (internal, internal). */
  private readonly directions: ReadonlyArray<readonly [string, string]>
  /** The flags of every call, or undefined when there are none (no empty list sent). */
  private readonly baseFlags: readonly string[] | undefined

  constructor(o: MediaAnchorOptions) {
    this.client = o.client
    this.pool = o.pool
    this.ifPublic = o.interfaces?.public ?? 'external'
    this.ifInternal = o.interfaces?.internal ?? 'internal'
    this.onFailure = o.onFailure ?? 'reject'
    this.rejectStatus = o.rejectStatus ?? 503
    this.replace = o.replace ?? ['origin', 'session-connection']
    this.iceInternal = (o.iceInternal ?? 'remove') || undefined // '' sends no ICE key
    this.extra = o.extra
    this.maxOfferAttempts = Math.max(1, o.maxOfferAttempts ?? 2)
    this.timeoutMs = o.timeoutMs
    this.migrateOnDown = o.migrateOnDown ?? true
    this.onEvent = o.onEvent
    const [pub, int] = [this.ifPublic, this.ifInternal]
    this.directions = [[pub, pub], [pub, int], [int, pub], [int, int]]
    this.baseFlags = this.extra?.flags !== undefined && this.extra.flags.length > 0 ? this.extra.flags : undefined
  }

  /**
   * Anchors an offer going from side `from` to side `to`. Without `instance` this is a new call: an
   * instance is selected (the next one when an offer times out). With `instance` (from the token) the
   * offer goes there: a re-offer, or the same offer again for a failover branch.
   */
  offer(call: MediaCall, from: Side, to: Side, sdp: Buffer, o: { instance?: string; extra?: MediaExtra; webrtc?: WebrtcEnds } = {}): Promise<MediaResult> {
    return this.coalesce('offer', call, sdp, () => this.doOffer(call, from, to, sdp, o.instance, o.extra, o.webrtc))
  }

  /** Anchors the answer of `call` (answererTag required) going from `from` to `to`, on `instance`. */
  answer(call: MediaCall, from: Side, to: Side, sdp: Buffer, instance: string, o: { extra?: MediaExtra; webrtc?: WebrtcEnds } = {}): Promise<MediaResult> {
    return this.coalesce('answer', call, sdp, () => this.doAnswer(call, from, to, sdp, instance, o.extra, o.webrtc))
  }

  /**
   * Ends the call's media on `instance`. Never throws: resolves false when rtpengine could not be
   * reached (its session then ends by rtpengine's own timeout). Unknown calls count as deleted.
   */
  async delete(call: { callId: string; offererTag?: string; answererTag?: string; viaBranch?: string }, instance: string): Promise<boolean> {
    const inst = this.resolve(instance, call.callId)
    if (inst === undefined) {
      this.emit('delete', 'delete-failed', call.callId, undefined, `no usable rtpengine for id ${instance}`)
      return false
    }
    try {
      // From-tag only (no to-tag): the whole call goes, every branch a failover left behind included.
      await this.client.request(inst.instance, 'delete', { 'call-id': call.callId, 'from-tag': call.offererTag, 'via-branch': call.viaBranch }, this.timeoutMs)
      this.pool.recordOutcome(inst.instance, undefined)
      if (inst.instance.sessions > 0) inst.instance.sessions--
      this.emit('delete', 'deleted', call.callId, inst.instance.id)
      return true
    } catch (err) {
      this.pool.recordOutcome(inst.instance, err)
      this.emit('delete', 'delete-failed', call.callId, inst.instance.id, errText(err))
      return false
    }
  }

  /** offer() on a SIP body: 'unchanged' when the body carries no SDP (nothing sent to rtpengine). */
  async offerBody(call: MediaCall, from: Side, to: Side, contentType: string | undefined, body: Buffer, o: { instance?: string; extra?: MediaExtra; webrtc?: WebrtcEnds } = {}): Promise<BodyResult> {
    const loc = findSdp(contentType, body)
    if (loc === undefined) return { action: 'unchanged' }
    return withBody(body, loc, await this.offer(call, from, to, body.subarray(loc.start, loc.end), o))
  }

  /** answer() on a SIP body: 'unchanged' when the body carries no SDP. */
  async answerBody(call: MediaCall, from: Side, to: Side, contentType: string | undefined, body: Buffer, instance: string, o: { extra?: MediaExtra; webrtc?: WebrtcEnds } = {}): Promise<BodyResult> {
    const loc = findSdp(contentType, body)
    if (loc === undefined) return { action: 'unchanged' }
    return withBody(body, loc, await this.answer(call, from, to, body.subarray(loc.start, loc.end), instance, o))
  }

  /** Requests in flight (coalesced), for tests and metrics. */
  get pending(): number {
    return this.inFlight.size
  }

  private async doOffer(call: MediaCall, from: Side, to: Side, sdp: Buffer, instance: string | undefined, extra: MediaExtra | undefined, webrtc: WebrtcEnds | undefined): Promise<MediaResult> {
    const args = this.args('offer', call, from, to, sdp, extra, webrtc)
    if (instance !== undefined) {
      const inst = this.resolve(instance, call.callId)
      if (inst === undefined) return this.fail('offer', call.callId, undefined, `rtpengine ${instance} is down or unknown`)
      try {
        const r = await this.client.request(inst.instance, 'offer', args, this.timeoutMs)
        this.pool.recordOutcome(inst.instance, undefined)
        // A moved call starts a new session on the new instance.
        if (inst.migrated) inst.instance.sessions++
        return this.anchored('offer', call.callId, inst.instance, r['sdp'], inst.migrated)
      } catch (err) {
        this.pool.recordOutcome(inst.instance, err)
        return this.fail('offer', call.callId, inst.instance.id, errText(err))
      }
    }
    const tried = new Set<string>()
    let lastError = 'no rtpengine available'
    for (let attempt = 0; attempt < this.maxOfferAttempts; attempt++) {
      const inst = this.pool.select(tried)
      if (inst === undefined) break
      tried.add(inst.id)
      try {
        const r = await this.client.request(inst, 'offer', args, this.timeoutMs)
        this.pool.recordOutcome(inst, undefined)
        inst.sessions++
        return this.anchored('offer', call.callId, inst, r['sdp'], false)
      } catch (err) {
        this.pool.recordOutcome(inst, err)
        lastError = errText(err)
        // An error reply (bad SDP, unsupported) would be the same elsewhere: only silence moves on.
        if (!(err instanceof NgError) || err.kind !== 'timeout') return this.fail('offer', call.callId, inst.id, lastError)
        // The offer may have been taken and only the reply lost: do not leave that session behind.
        void this.client.request(inst, 'delete', { 'call-id': call.callId, 'from-tag': call.offererTag }, this.timeoutMs).catch(() => undefined)
      }
    }
    return this.fail('offer', call.callId, undefined, lastError)
  }

  private async doAnswer(call: MediaCall, from: Side, to: Side, sdp: Buffer, instance: string, extra: MediaExtra | undefined, webrtc: WebrtcEnds | undefined): Promise<MediaResult> {
    if (call.answererTag === undefined || call.answererTag === '') return this.fail('answer', call.callId, instance, 'answer without a to-tag')
    const inst = this.resolve(instance, call.callId)
    if (inst === undefined) return this.fail('answer', call.callId, undefined, `rtpengine ${instance} is down or unknown`)
    try {
      const r = await this.client.request(inst.instance, 'answer', this.args('answer', call, from, to, sdp, extra, webrtc), this.timeoutMs)
      this.pool.recordOutcome(inst.instance, undefined)
      return this.anchored('answer', call.callId, inst.instance, r['sdp'], inst.migrated)
    } catch (err) {
      this.pool.recordOutcome(inst.instance, err)
      return this.fail('answer', call.callId, inst.instance.id, errText(err))
    }
  }

  private args(cmd: 'offer' | 'answer', call: MediaCall, from: Side, to: Side, sdp: Buffer, extra: MediaExtra | undefined, webrtc: WebrtcEnds | undefined): Record<string, BInput | undefined> {
    // The receiving end's profile: WebRTC toward a browser, plain RTP toward the other end of a browser's call;
    // a call without browsers keeps what its ends offered (only ICE removed toward the backends).
    const profile = webrtc?.to ? (cmd === 'offer' ? TOWARD_BROWSER_OFFER : TOWARD_BROWSER_ANSWER) : webrtc?.from ? TOWARD_PLAIN : undefined
    // Every offer and answer builds this: no spreads or arrays unless a profile or per-set extra asks for them.
    const a: Record<string, BInput | undefined> = profile === undefined && this.extra === undefined && extra === undefined ? {} : { ...profile, ...this.extra, ...extra }
    a['call-id'] = call.callId
    a['from-tag'] = call.offererTag
    a['to-tag'] = call.answererTag
    a['via-branch'] = call.viaBranch
    a['sdp'] = sdp
    // rtpengine 10.5: the sender's side first, then the receiver's (the four pairs are built once).
    a['direction'] = this.directions[from === 'public' ? (to === 'public' ? 0 : 1) : (to === 'public' ? 2 : 3)]
    a['replace'] = this.replace
    a['ICE'] = profile !== undefined ? profile['ICE'] as string : to === 'internal' ? this.iceInternal : undefined
    a['flags'] = extra?.flags !== undefined && extra.flags.length > 0 ? [...(this.extra?.flags ?? []), ...extra.flags] : this.baseFlags
    return a
  }

  /** The instance named by `id`, or (down/unknown, migrateOnDown) the rendezvous choice for the call. */
  private resolve(id: string, callId: string): { instance: RtpengineInstance; migrated: boolean } | undefined {
    const inst = this.pool.get(id)
    // A retired instance (removed by a reload) still serves its calls while it answers.
    if (inst !== undefined && (inst.health !== 'down')) return { instance: inst, migrated: false }
    if (!this.migrateOnDown) return undefined
    // Every edge with the same health view picks the same instance for this Call-ID, so answer,
    // re-offers and delete of a moved call meet without the token changing.
    const moved = this.pool.rendezvous(callId)
    return moved === undefined ? undefined : { instance: moved, migrated: true }
  }

  private coalesce(cmd: 'offer' | 'answer', call: MediaCall, sdp: Buffer, run: () => Promise<MediaResult>): Promise<MediaResult> {
    const key = `${cmd}\n${call.callId}\n${call.offererTag}\n${call.answererTag ?? ''}\n${call.viaBranch ?? ''}`
    const cur = this.inFlight.get(key)
    if (cur !== undefined && cur.sdp.equals(sdp)) return cur.promise
    const promise = run().finally(() => {
      if (this.inFlight.get(key)?.promise === promise) this.inFlight.delete(key)
    })
    this.inFlight.set(key, { sdp, promise })
    return promise
  }

  private anchored(cmd: 'offer' | 'answer', callId: string, inst: RtpengineInstance, sdp: unknown, migrated: boolean): MediaResult {
    if (typeof sdp !== 'string') return this.fail(cmd, callId, inst.id, 'ok reply without sdp')
    this.emit(cmd, 'anchored', callId, inst.id)
    return { action: 'anchored', sdp: Buffer.from(sdp, 'latin1'), instance: inst.id, migrated }
  }

  private fail(cmd: 'offer' | 'answer', callId: string, instance: string | undefined, reason: string): MediaResult {
    if (this.onFailure === 'passthrough') {
      this.emit(cmd, 'passthrough', callId, instance, reason)
      return { action: 'passthrough', reason, instance }
    }
    this.emit(cmd, 'reject', callId, instance, reason)
    return { action: 'reject', status: this.rejectStatus, reason, instance }
  }

  private emit(command: MediaEvent['command'], outcome: MediaEvent['outcome'], callId: string, instance: string | undefined, reason?: string): void {
    if (this.onEvent === undefined) return
    const ev: MediaEvent = { command, outcome, callId, instance }
    if (reason !== undefined) ev.reason = reason
    try { this.onEvent(ev) } catch { /* a listener must not break the call */ }
  }
}

function withBody(body: Buffer, loc: { start: number; end: number }, r: MediaResult): BodyResult {
  if (r.action !== 'anchored') return r
  const out = loc.start === 0 && loc.end === body.length ? r.sdp : Buffer.concat([body.subarray(0, loc.start), r.sdp, body.subarray(loc.end)])
  return { action: 'anchored', body: out, contentLength: out.length, instance: r.instance, migrated: r.migrated }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
