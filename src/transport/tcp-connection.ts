import type { Socket } from 'node:net'
import type { ConnectionTable } from './connection-table.js'
import { peerKey } from './connection-table.js'
import { codedError, type ResolvedOptions, type TransportHandlers } from './options.js'
import { parseMessage } from '../sip/index.js'
import { StreamFramer, type FrameSink } from './stream-framer.js'
import type { Inbound, Listener, Peer } from './types.js'

/** What every connection of one Transports instance shares. */
export interface TcpContext {
  readonly handlers: TransportHandlers
  readonly opts: ResolvedOptions
  readonly table: ConnectionTable
  handlerError(err: unknown): void
}

const PONG = Buffer.from('\r\n')

/** One TCP connection, inbound (accepted) or outbound (connected by us), framing SIP messages both ways. */
export class TcpConnection implements FrameSink {
  readonly id: number
  readonly key: string
  /** The remote end; shared by every Inbound of this connection (treat as read-only). */
  readonly peer: Peer
  private connected: boolean
  /** Framing failed: the stream is out of sync, nothing more is sent on it. */
  private broken = false
  private closed = false
  private readonly framer: StreamFramer

  constructor(
    private readonly ctx: TcpContext,
    private readonly socket: Socket,
    readonly listener: Listener,
    peer: Peer,
    readonly inbound: boolean,
  ) {
    this.id = ctx.table.nextId()
    this.peer = Object.freeze(peer)
    this.key = peerKey(peer.address, peer.port)
    this.connected = inbound
    this.framer = new StreamFramer(this, ctx.opts.maxMessageSize)
    socket.setNoDelay(true)
    socket.setTimeout(inbound ? ctx.opts.tcpIdleTimeoutMs : ctx.opts.connectTimeoutMs)
    socket.on('data', this.onData)
    socket.on('error', this.onError)
    socket.on('timeout', this.onTimeout)
    socket.on('close', this.onClose)
    if (!inbound) socket.once('connect', this.onConnect)
    ctx.table.add(this)
  }

  get isOpen(): boolean {
    return !this.closed && !this.broken
  }

  /** Queue bytes (Node buffers them while connecting). Failures are reported, never thrown. */
  write(buf: Buffer): void {
    if (!this.isOpen) return
    if (this.socket.writableLength + buf.length > this.ctx.opts.maxWriteQueue) {
      // A peer that does not read would otherwise grow our memory without bound.
      this.reportSendError(codedError('ENOBUFS', `write queue to ${this.key} over ${this.ctx.opts.maxWriteQueue} bytes`))
      this.destroy()
      return
    }
    this.socket.write(buf)
  }

  destroy(): void {
    this.framer.close()
    this.socket.destroy()
  }

  onFrame(buf: Buffer, start: number, end: number): void {
    let inbound: Inbound
    try {
      inbound = { msg: parseMessage(buf, start, end - start), source: this.peer, listener: this.listener, connId: this.id }
    } catch (err) {
      // Framed fine, so the stream is still in sync: the proxy may answer 400 on this connection.
      this.callParseError(err as Error, buf.subarray(start, end))
      return
    }
    try {
      this.ctx.handlers.onMessage(inbound)
    } catch (err) {
      this.ctx.handlerError(err)
    }
  }

  onFrameError(err: Error, buf: Buffer): void {
    this.broken = true
    this.callParseError(err, buf)
    this.socket.destroy()
  }

  onPing(): void {
    if (this.isOpen) this.socket.write(PONG)
  }

  private callParseError(err: Error, buf: Buffer): void {
    try {
      this.ctx.handlers.onParseError(err, buf, this.peer, this.listener, this.id)
    } catch (e) {
      this.ctx.handlerError(e)
    }
  }

  private reportSendError(err: Error): void {
    try {
      this.ctx.handlers.onSendError(err, this.peer)
    } catch (e) {
      this.ctx.handlerError(e)
    }
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
      this.reportSendError(codedError('ETIMEDOUT', `connect to ${this.key} timed out after ${this.ctx.opts.connectTimeoutMs} ms`))
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
    if (!this.connected || this.socket.writableLength > 0) this.reportSendError(err)
  }

  private readonly onClose = (): void => {
    this.closed = true
    this.framer.close()
    this.ctx.table.remove(this)
  }
}
