import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { advertisedHostport, familyOf } from './listen-spec.js'
import { codedError, type TransportHandlers } from './options.js'
import { parseMessage, skipKeepAlives } from '../sip/index.js'
import { isStun, stunBindingResponse } from './stun.js'
import type { Inbound, Listener, ListenSpec, Peer } from './types.js'

/** Node attaches the destination to dgram send errors; we read it back instead of closing over it. */
interface SendError extends Error {
  address?: string
  port?: number
}

/** Largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP header bytes). */
const MAX_UDP_PAYLOAD = 65507

/** One UDP socket of the edge: every datagram is one message (RFC 3261 §18.3). */
export class UdpListener implements Listener {
  readonly family: 4 | 6
  private boundPort = 0
  private advertised = ''
  private readonly socket: Socket
  private bound = false
  private closed = false

  constructor(
    readonly id: number,
    readonly spec: ListenSpec,
    private readonly handlers: TransportHandlers,
    private readonly handlerError: (err: unknown) => void,
    private readonly bufferSize: number | undefined,
    /** SO_REUSEADDR: set only when a wildcard and a specific address of this config share the port. */
    reuseAddr = false,
    /** SO_REUSEPORT: each worker process binds the same address and port (the kernel spreads sources by hash). */
    reusePort = false,
  ) {
    this.family = familyOf(spec.host) === 6 ? 6 : 4
    this.socket = createSocket({ type: this.family === 6 ? 'udp6' : 'udp4', ipv6Only: this.family === 6, reuseAddr, ...(reusePort ? { reusePort } : {}) })
    this.socket.on('message', this.onDatagram)
  }

  get port(): number {
    return this.boundPort
  }

  get hostport(): string {
    return this.advertised
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onBindError = (err: Error): void => reject(err)
      this.socket.once('error', onBindError)
      this.socket.bind({ address: this.spec.host, port: this.spec.port, exclusive: true }, () => {
        this.socket.off('error', onBindError)
        // Errors after bind (ICMP reports on some platforms, EMSGSIZE...) are send failures, not fatal.
        this.socket.on('error', this.onSocketError)
        this.bound = true
        if (this.bufferSize !== undefined) this.applyBufferSize(this.bufferSize)
        this.boundPort = this.socket.address().port
        this.advertised = advertisedHostport(this.spec, this.boundPort)
        resolve()
      })
    })
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) return resolve()
      this.closed = true
      this.bound = false
      try {
        this.socket.close(() => resolve())
      } catch {
        resolve() // a socket whose bind failed may already be gone
      }
    })
  }

  /** Bigger kernel buffers ride out bursts (default rmem is ~200 KB); the kernel caps at net.core.rmem_max. */
  private applyBufferSize(size: number): void {
    try {
      this.socket.setRecvBufferSize(size)
      this.socket.setSendBufferSize(size)
    } catch (err) {
      this.handlerError(err)
    }
  }

  /** `address` must be an IP literal of this socket's family (no brackets). */
  send(buf: Buffer, address: string, port: number): void {
    // dgram would silently bind an ephemeral port for a socket that is not (or no longer) bound.
    if (!this.bound) throw codedError('ESHUTDOWN', `UDP listener ${this.spec.host}:${this.spec.port} is closed`)
    // No callback: libuv then tries a synchronous send (uv_udp_try_send) with no request object (~0.3 µs
    // less per datagram). dgram then drops synchronous errors, so the one a proxy can cause itself, a
    // datagram too large for UDP, is checked here; asynchronous ones still reach the 'error' event.
    if (buf.length > MAX_UDP_PAYLOAD) {
      const err: SendError = codedError('EMSGSIZE', `send EMSGSIZE ${address}:${port} (${buf.length} bytes)`)
      err.address = address
      err.port = port
      throw err
    }
    this.socket.send(buf, port, address)
  }

  /** A STUN keepalive (RFC 5626 §4.4.2): a Binding request is answered with the source address, the rest ignored. */
  private onStun(buf: Buffer, rinfo: RemoteInfo): void {
    const res = stunBindingResponse(buf, rinfo.address, rinfo.port)
    if (res !== undefined && this.bound) this.socket.send(res, rinfo.port, rinfo.address)
  }

  private readonly onSocketError = (err: SendError): void => {
    this.reportSendError(err)
  }

  private reportSendError(err: SendError): void {
    const dest: Peer = { proto: 'udp', address: err.address ?? '', port: err.port ?? 0 }
    try {
      this.handlers.onSendError(err, dest)
    } catch (e) {
      this.handlerError(e)
    }
  }

  private readonly onDatagram = (buf: Buffer, rinfo: RemoteInfo): void => {
    if (buf[0]! < 2 && isStun(buf)) return this.onStun(buf, rinfo)
    const start = skipKeepAlives(buf, 0, buf.length)
    if (start === buf.length) return // CRLF keep-alive
    const source: Peer = { proto: 'udp', address: rinfo.address, port: rinfo.port }
    let inbound: Inbound
    try {
      inbound = { msg: parseMessage(buf, start, buf.length - start), source, listener: this }
    } catch (err) {
      try {
        this.handlers.onParseError(err as Error, buf, source, this)
      } catch (e) {
        this.handlerError(e)
      }
      return
    }
    try {
      this.handlers.onMessage(inbound)
    } catch (err) {
      this.handlerError(err)
    }
  }
}
