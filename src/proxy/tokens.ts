import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomFillSync, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import { PROTO_CODES } from '../transport/protos.js'
import type { Peer } from '../transport/types.js'

/**
 * Opaque, authenticated tokens the edge hands out in Record-Route (`;sk=`) and Contact (`;ct=`) URIs.
 *
 * A token is AES-256-GCM sealed with a key derived from the configured secret, so it reveals no internal
 * address to the outside, and nobody without the secret can make one that points somewhere else: a forged
 * or altered token fails authentication and the request gets 403, it is never forwarded. Every edge
 * instance holding the same secret can open tokens made by another one, which is what makes dialog
 * stickiness survive restarts and scale out with no shared store.
 */

/** Where an in-dialog request goes, from either side: the backend flow and the public-side flow. */
export interface RouteToken {
  internal: Peer
  external: Peer
  issuedAt: number
  /** The dialog was created from inside (a backend called out): its Call-ID is masked toward the public side. */
  outbound: boolean
  /** The rtpengine instance anchoring the call's media (its 6-char id), when media is anchored. */
  media?: string
}

/** A backend Contact hidden behind the edge: the original URI and the flow that reaches it. */
export interface ContactToken {
  uri: string
  peer: Peer
  issuedAt: number
}

/**
 * A registered phone's flow, sealed into the edge's Path entry (RFC 3327): how a request the registrar sends
 * back through that Path reaches the phone. For UDP the NAT address the REGISTER came from is enough (any
 * edge with the secret can send there, after a restart too); a connection (TCP, TLS, WS, WSS) is owned by
 * one process, so its id and that process's instance number travel too, and nothing else may stand in for it.
 */
export interface FlowToken {
  peer: Peer
  /** Connection transports: the connection the REGISTER arrived on, in the process `instance`. */
  connId?: number
  instance?: number
  issuedAt: number
}

const KIND_ROUTE = 1
const KIND_CONTACT = 2
const KIND_ROUTE_OUT = 3
const KIND_FLOW = 4
/** Optional trailer of a route token: the rtpengine instance id (4 bytes). */
const FIELD_MEDIA = 0x4d
const MEDIA_ID_LEN = 4
/** Masked Call-IDs start with this, so the edge knows which ones to restore on the way in. */
export const MASK_PREFIX = 'se1.'

const NONCE_LEN = 12
const TAG_LEN = 12

/**
 * Tokens are cached both ways: a trunk or an Asterisk sends most calls from one address and one Contact, so
 * the same token comes up again and again, and ACK/BYE/re-INVITE carry a token the edge opened before. A hit
 * costs a Map lookup instead of an AES-GCM operation. issuedAt is kept in hours so cached tokens stay valid.
 */
const CACHE_MAX = 4096

export class TokenCodec {
  private readonly key: Buffer
  private readonly sealed = new Map<string, string>()
  private readonly opened = new Map<string, RouteToken | ContactToken | FlowToken>()
  private readonly scratch = Buffer.allocUnsafe(1024)
  private readonly nonce = Buffer.allocUnsafe(NONCE_LEN)

  /** `maxAgeS`: tokens older than this are stale (refused with 404); long calls need a generous value. */
  constructor(
    secret: string,
    private readonly maxAgeS = 7 * 86400,
  ) {
    if (!secret) throw new Error('token secret must not be empty')
    this.key = Buffer.from(hkdfSync('sha256', secret, 'sipedge', 'sipedge token v1', 32))
  }

  /** `media`: the rtpengine instance id of the call (6 base64url chars = 4 bytes in the token). */
  sealRoute(internal: Peer, external: Peer, outbound = false, media?: string): string {
    const hour = nowHour()
    const cacheKey = `r${outbound ? 1 : 0}${hour}${internal.proto}${internal.address}:${internal.port}|${external.proto}${external.address}:${external.port}|${media ?? ''}`
    const hit = this.sealed.get(cacheKey)
    if (hit !== undefined) return hit
    let n = 0
    n = this.scratch.writeUInt8(outbound ? KIND_ROUTE_OUT : KIND_ROUTE, n)
    n = this.scratch.writeUInt32BE(hour, n)
    n = writePeer(this.scratch, n, internal)
    n = writePeer(this.scratch, n, external)
    if (media !== undefined) {
      // An optional trailer, so tokens sealed before media existed still open unchanged.
      const id = Buffer.from(media, 'base64url')
      if (id.length !== MEDIA_ID_LEN || id.toString('base64url') !== media) throw new Error(`bad rtpengine id '${media}'`)
      n = this.scratch.writeUInt8(FIELD_MEDIA, n)
      n += id.copy(this.scratch, n)
    }
    return remember(this.sealed, cacheKey, this.seal(n))
  }

  sealContact(uri: string, peer: Peer): string {
    const hour = nowHour()
    const cacheKey = `c${hour}${peer.proto}${peer.address}:${peer.port}|${uri}`
    const hit = this.sealed.get(cacheKey)
    if (hit !== undefined) return hit
    let n = 0
    n = this.scratch.writeUInt8(KIND_CONTACT, n)
    n = this.scratch.writeUInt32BE(hour, n)
    n = writePeer(this.scratch, n, peer)
    n += this.scratch.write(uri, n, this.scratch.length - n, 'utf8')
    return remember(this.sealed, cacheKey, this.seal(n))
  }

  /** The Path entry's `;fl=` token: `connId`/`instance` for connection transports only. */
  sealFlow(peer: Peer, connId?: number, instance?: number): string {
    let n = 0
    n = this.scratch.writeUInt8(KIND_FLOW, n)
    n = this.scratch.writeUInt32BE(nowHour(), n)
    n = writePeer(this.scratch, n, peer)
    if (connId !== undefined && instance !== undefined) {
      n = this.scratch.writeUInt32BE(connId >>> 0, n)
      n = this.scratch.writeUInt32BE(instance >>> 0, n)
    }
    // Not cached: a REGISTER comes once per registration interval, and each token is opened by one registrar.
    return this.seal(n)
  }

  openFlow(token: string): FlowToken | 'forged' | 'stale' {
    const hit = this.opened.get(token)
    if (hit !== undefined && 'peer' in hit && !('uri' in hit)) return nowS() - hit.issuedAt > this.maxAgeS ? 'stale' : hit
    const plain = this.open(token)
    if (!plain || plain[0] !== KIND_FLOW) return 'forged'
    const issuedAt = plain.readUInt32BE(1)
    const peer = readPeer(plain, 5)
    if (!peer) return 'forged'
    const flow: FlowToken = { peer: peer.peer, issuedAt }
    if (plain.length === peer.next + 8) {
      flow.connId = plain.readUInt32BE(peer.next)
      flow.instance = plain.readUInt32BE(peer.next + 4)
    } else if (plain.length !== peer.next) return 'forged'
    if ((flow.connId !== undefined) !== (peer.peer.proto !== 'udp')) return 'forged'
    if (nowS() - issuedAt > this.maxAgeS) return 'stale'
    remember(this.opened, token, flow)
    return flow
  }

  /** Returns the token, 'forged' when it fails authentication or is malformed, 'stale' when too old. */
  openRoute(token: string): RouteToken | 'forged' | 'stale' {
    const hit = this.opened.get(token)
    if (hit !== undefined && 'external' in hit) return nowS() - hit.issuedAt > this.maxAgeS ? 'stale' : hit
    const plain = this.open(token)
    if (!plain || (plain[0] !== KIND_ROUTE && plain[0] !== KIND_ROUTE_OUT)) return 'forged'
    const issuedAt = plain.readUInt32BE(1)
    const internal = readPeer(plain, 5)
    if (!internal) return 'forged'
    const external = readPeer(plain, internal.next)
    if (!external) return 'forged'
    if (nowS() - issuedAt > this.maxAgeS) return 'stale'
    const route: RouteToken = { internal: internal.peer, external: external.peer, issuedAt, outbound: plain[0] === KIND_ROUTE_OUT }
    if (external.next < plain.length) {
      if (plain[external.next] !== FIELD_MEDIA || plain.length !== external.next + 1 + MEDIA_ID_LEN) return 'forged'
      route.media = plain.toString('base64url', external.next + 1)
    }
    remember(this.opened, token, route)
    return route
  }

  openContact(token: string): ContactToken | 'forged' | 'stale' {
    const hit = this.opened.get(token)
    if (hit !== undefined && 'uri' in hit) return nowS() - hit.issuedAt > this.maxAgeS ? 'stale' : hit
    const plain = this.open(token)
    if (!plain || plain[0] !== KIND_CONTACT) return 'forged'
    const issuedAt = plain.readUInt32BE(1)
    const peer = readPeer(plain, 5)
    if (!peer) return 'forged'
    if (nowS() - issuedAt > this.maxAgeS) return 'stale'
    const contact: ContactToken = { uri: plain.toString('utf8', peer.next), peer: peer.peer, issuedAt }
    remember(this.opened, token, contact)
    return contact
  }

  /**
   * Call-ID masking (Kamailio topoh `mask_callid`): deterministic, so every message of a dialog carries the
   * same masked value, and reversible only with the secret. SIV-like: the CTR IV is an HMAC of the Call-ID,
   * checked again on unmasking, so a made-up value does not unmask.
   */
  maskCallId(callId: string): string {
    const iv = createHmac('sha256', this.key).update(callId).digest().subarray(0, 16)
    const c = createCipheriv('aes-256-ctr', this.key, iv)
    return MASK_PREFIX + Buffer.concat([iv, c.update(callId, 'utf8'), c.final()]).toString('base64url')
  }

  unmaskCallId(masked: string): string | undefined {
    if (!masked.startsWith(MASK_PREFIX)) return undefined
    const raw = Buffer.from(masked.slice(MASK_PREFIX.length), 'base64url')
    if (raw.length < 17) return undefined
    const iv = raw.subarray(0, 16)
    const d = createDecipheriv('aes-256-ctr', this.key, iv)
    const callId = Buffer.concat([d.update(raw.subarray(16)), d.final()]).toString('utf8')
    const check = createHmac('sha256', this.key).update(callId).digest().subarray(0, 16)
    return timingSafeEqual(iv, check) ? callId : undefined
  }

  private seal(plainLen: number): string {
    randomFillSync(this.nonce)
    const cipher = createCipheriv('aes-256-gcm', this.key, this.nonce, { authTagLength: TAG_LEN })
    const body = cipher.update(this.scratch.subarray(0, plainLen))
    cipher.final()
    return Buffer.concat([this.nonce, body, cipher.getAuthTag()]).toString('base64url')
  }

  private open(token: string): Buffer | undefined {
    if (token.length < 16 || token.length > 1400) return undefined
    const raw = Buffer.from(token, 'base64url')
    if (raw.length < NONCE_LEN + TAG_LEN + 5) return undefined
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, NONCE_LEN), {
        authTagLength: TAG_LEN,
      })
      decipher.setAuthTag(raw.subarray(raw.length - TAG_LEN))
      const plain = decipher.update(raw.subarray(NONCE_LEN, raw.length - TAG_LEN))
      decipher.final()
      return plain
    } catch {
      return undefined
    }
  }
}

function nowS(): number {
  return Math.floor(Date.now() / 1000)
}

/** Now, rounded down to the hour (in seconds): the issue time written into tokens. */
function nowHour(): number {
  const s = nowS()
  return s - (s % 3600)
}

/** Bounded cache insert: when full, the oldest entries (Map insertion order) go first. */
function remember<V>(map: Map<string, V>, key: string, value: V): V {
  if (map.size >= CACHE_MAX) {
    let drop = CACHE_MAX >> 3
    for (const k of map.keys()) {
      map.delete(k)
      if (--drop === 0) break
    }
  }
  map.set(key, value)
  return value
}

function writePeer(buf: Buffer, n: number, peer: Peer): number {
  n = buf.writeUInt8(PROTO_CODES.indexOf(peer.proto), n)
  n = buf.writeUInt16BE(peer.port, n)
  const len = buf.write(peer.address, n + 1, 64, 'latin1')
  buf.writeUInt8(len, n)
  return n + 1 + len
}

function readPeer(buf: Buffer, n: number): { peer: Peer; next: number } | undefined {
  if (n + 4 > buf.length) return undefined
  const proto = PROTO_CODES[buf[n]!]
  if (proto === undefined) return undefined
  const port = buf.readUInt16BE(n + 1)
  const len = buf[n + 3]!
  const end = n + 4 + len
  if (end > buf.length) return undefined
  const address = buf.toString('latin1', n + 4, end)
  // Authenticated tokens only ever hold IP literals; checking again costs little and guards key misuse.
  if (isIP(address) === 0 || port === 0) return undefined
  return { peer: { proto, address, port }, next: end }
}
