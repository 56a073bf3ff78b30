import { parseMessage } from '../sip/index.js'
import type { ConnectionTable } from './connection-table.js'
import { codedError, type ResolvedOptions, type TransportHandlers } from './options.js'
import type { Inbound, Listener, Peer } from './types.js'

/** A live connection of any connection-oriented transport (TCP, TLS, WebSocket). */
export interface Connection {
  readonly id: number
  readonly key: string
  /** The remote end; shared by every Inbound of this connection (treat as read-only). */
  readonly peer: Peer
  readonly listener: Listener
  /** Accepted by a listener (true) or opened by the edge (false). */
  readonly inbound: boolean
  readonly isOpen: boolean
  /** Queue one message. Failures are reported to onSendError, never thrown. */
  write(buf: Buffer): void
  destroy(): void
}

/** What every listener and connection of one Transports instance shares. */
export interface TransportContext {
  readonly handlers: TransportHandlers
  readonly opts: ResolvedOptions
  readonly table: ConnectionTable
  handlerError(err: unknown): void
}

/** Parse one complete message of a connection and hand it to the proxy; a parse failure is reported, not thrown. */
export function deliver(ctx: TransportContext, conn: Connection, buf: Buffer, start: number, end: number): void {
  let inbound: Inbound
  try {
    inbound = { msg: parseMessage(buf, start, end - start), source: conn.peer, listener: conn.listener, connId: conn.id }
  } catch (err) {
    // The message's boundaries are known, so the connection is still in sync: the proxy may answer 400 on it.
    reportParseError(ctx, conn, err as Error, start === 0 && end === buf.length ? buf : buf.subarray(start, end))
    return
  }
  try {
    ctx.handlers.onMessage(inbound)
  } catch (err) {
    ctx.handlerError(err)
  }
}

export function reportParseError(ctx: TransportContext, conn: Connection, err: Error, buf: Buffer): void {
  try {
    ctx.handlers.onParseError(err, buf, conn.peer, conn.listener, conn.id)
  } catch (e) {
    ctx.handlerError(e)
  }
}

export function reportSendError(ctx: TransportContext, err: Error, dest: Peer): void {
  try {
    ctx.handlers.onSendError(err, dest)
  } catch (e) {
    ctx.handlerError(e)
  }
}

/**
 * True (after reporting ENOBUFS and dropping the connection) when `queued` bytes would exceed the write
 * queue limit: a peer that does not read would otherwise grow our memory without bound.
 */
export function writeQueueFull(ctx: TransportContext, conn: Connection, queued: number): boolean {
  if (queued <= ctx.opts.maxWriteQueue) return false
  reportSendError(ctx, codedError('ENOBUFS', `write queue to ${conn.key} over ${ctx.opts.maxWriteQueue} bytes`), conn.peer)
  conn.destroy()
  return true
}
