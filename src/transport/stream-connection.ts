import type { Socket } from 'node:net'
import { deliver, reportParseError, reportSendError, writeQueueFull, type Connection, type TransportContext } from './connection.js'
import { peerKey } from './connection-table.js'
import { codedError } from './options.js'
import { StreamFramer, type FrameSink } from './stream-framer.js'
import type { Listener, Peer } from './types.js'

const PONG = Buffer.from('\r\n')

/**
 * One TCP or TLS connection, inbound (accepted) or outbound (connected by us), framing SIP messages both
 * ways. For TLS the socket is a TLSSocket: the same stream once the handshake is done.
 */
export class StreamConnection implements Connection, FrameSink {
  readonly id: number
  readonly key: string
  readonly peer: Peer
  private connected: boolean
  /** Framing failed: the stream is out of sync, nothing more is sent on it. */
  private broken = false
  private closed = false
  private readonly framer: StreamFramer

  constructor(
    private readonly ctx: TransportContext,
    private readonly socket: Socket,
    readonly listener: Listener,
    peer: Peer,
    readonly inbound: boolean,
  ) {
    this.id = ctx.table.nextId()
    this.peer = Object.freeze(peer)
    this.key = peerKey(peer.proto, peer.address, peer.port)
    this.connected = inbound
    this.framer = new StreamFramer(this, ctx.opts.maxMessageSize)
    socket.setNoDelay(true)
    socket.setTimeout(inbound ? ctx.opts.tcpIdleTimeoutMs : ctx.opts.connectTimeoutMs)
    socket.on('data', this.onData)
    socket.on('error', this.onError)
    socket.on('timeout', this.onTimeout)
    socket.on('close', this.onClose)
    // An outgoing TLS connection is usable (and verified) only once the handshake is done.
    if (!inbound) socket.once(peer.proto === 'tls' ? 'secureConnect' : 'connect', this.onConnect)
    ctx.table.add(this)
  }

  get isOpen(): boolean {
    return !this.closed && !this.broken
  }

  /** Queue bytes (Node buffers them while connecting). Failures are reported, never thrown. */
  write(buf: Buffer): void {
    if (!this.isOpen || writeQueueFull(this.ctx, this, this.socket.writableLength + buf.length)) return
    this.socket.write(buf)
  }

  destroy(): void {
    this.framer.close()
    this.socket.destroy()
  }

  onFrame(buf: Buffer, start: number, end: number): void {
    deliver(this.ctx, this, buf, start, end)
  }

  onFrameError(err: Error, buf: Buffer): void {
    this.broken = true
    reportParseError(this.ctx, this, err, buf)
    this.socket.destroy()
  }

  onPing(): void {
    if (this.isOpen) this.socket.write(PONG)
  }

  private readonly onData = (chunk: Buffer): void => {
    this.framer.push(chunk)
  }

  private readonly onConnect = (): void => {
    this.connected = true
    this.socket.setTimeout(this.ctx.opts.tcpIdleTimeoutMs)
  }

  private readonly onTimeout = (): void => {
    if (!this.connected) {
      reportSendError(this.ctx, codedError('ETIMEDOUT', `connect to ${this.key} timed out after ${this.ctx.opts.connectTimeoutMs} ms`), this.peer)
    } else if (this.isOpen && this.stillNeeded()) {
      this.socket.setTimeout(this.ctx.opts.tcpIdleTimeoutMs)
      return
    }
    this.destroy()
  }

  private stillNeeded(): boolean {
    const keepOpen = this.ctx.handlers.keepOpen
    if (!keepOpen) return false
    try {
      return keepOpen(this.peer)
    } catch (err) {
      this.ctx.handlerError(err)
      return false
    }
  }

  private readonly onError = (err: Error): void => {
    // Refused/unreachable/reset with bytes still queued is a failed send. A reset on an idle connection is
    // just a peer going away.
    if (!this.connected || this.socket.writableLength > 0) reportSendError(this.ctx, err, this.peer)
  }

  private readonly onClose = (): void => {
    this.closed = true
    this.framer.close()
    this.ctx.table.remove(this)
  }
}
