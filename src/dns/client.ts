// A stub resolver over UDP (node:dgram): one question per query, asked of the configured servers in turn
// (`dns.servers`, else the system's from /etc/resolv.conf as node reads it), each try bounded by a timeout.
// Answers are matched by id, server address and question, so a spoofed or stray datagram is ignored.
import { createSocket, type Socket } from 'node:dgram'
import { getServers } from 'node:dns'
import { randomInt } from 'node:crypto'
import { isIP } from 'node:net'
import { decodeAnswer, encodeQuery, type DnsAnswer } from './wire.js'

export interface DnsServer { address: string; port: number }

export interface DnsClientOptions {
  /** `ip`, `ip:port`, `[v6]:port`; empty: the system's resolvers. */
  servers?: readonly string[]
  /** One try's deadline (default 1000 ms); each server is tried twice, in turn. */
  timeoutMs?: number
}

/** The server list as written in config (`10.0.0.2`, `10.0.0.2:5353`, `[::1]:53`, `::1`); throws naming a bad one. */
export function parseServers(list: readonly string[]): DnsServer[] {
  return list.map((s) => {
    const server = parseServer(s)
    if (!server) throw new Error(`"${s}" is not a DNS server address (ip, ip:port or [ipv6]:port)`)
    return server
  })
}

export function parseServer(s: string): DnsServer | undefined {
  let host = s
  let port = 53
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s)
  if (bracket) {
    host = bracket[1]!
    if (bracket[2] !== undefined) port = Number(bracket[2])
  } else if (isIP(s) === 0) {
    const colon = s.lastIndexOf(':')
    if (colon < 0) return undefined
    host = s.slice(0, colon)
    port = Number(s.slice(colon + 1))
  }
  if (isIP(host) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) return undefined
  return { address: host, port }
}

interface Pending {
  server: DnsServer
  name: string
  type: number
  resolve(a: DnsAnswer): void
  timer: NodeJS.Timeout
}

export class DnsClient {
  private readonly servers: DnsServer[]
  private readonly timeoutMs: number
  private readonly sockets: { 4?: Socket; 6?: Socket } = {}
  private readonly pending = new Map<number, Pending>()
  private closed = false

  constructor(o: DnsClientOptions = {}) {
    this.servers = o.servers?.length ? parseServers(o.servers) : parseServers(getServers())
    this.timeoutMs = o.timeoutMs ?? 1000
  }

  /** The servers asked, in order. */
  get serverList(): readonly DnsServer[] {
    return this.servers
  }

  /**
   * Asks each server in turn (twice round) until one answers. Resolves with the answer (NXDOMAIN and SERVFAIL
   * included: the caller decides); rejects when none answered, or on a truncated answer (no TCP retry: SIP
   * records fit the 1232-byte EDNS payload by far).
   */
  async query(name: string, type: number): Promise<DnsAnswer> {
    if (this.servers.length === 0) throw new Error('no DNS server configured')
    let lastErr: Error | undefined
    for (let attempt = 0; attempt < this.servers.length * 2; attempt++) {
      const server = this.servers[attempt % this.servers.length]!
      try {
        const a = await this.ask(server, name, type)
        if (a.truncated) throw new Error(`truncated DNS answer for ${name} from ${server.address}`)
        // SERVFAIL / REFUSED: another server may do better.
        if ((a.rcode === 2 || a.rcode === 5) && attempt + 1 < this.servers.length * 2) {
          lastErr = new Error(`${server.address} answered ${a.rcode === 2 ? 'SERVFAIL' : 'REFUSED'} for ${name}`)
          continue
        }
        return a
      } catch (err) {
        lastErr = err as Error
        if (this.closed) break
      }
    }
    throw lastErr ?? new Error(`no answer for ${name}`)
  }

  close(): void {
    this.closed = true
    for (const p of this.pending.values()) clearTimeout(p.timer)
    this.pending.clear()
    this.sockets[4]?.close()
    this.sockets[6]?.close()
    delete this.sockets[4]
    delete this.sockets[6]
  }

  private ask(server: DnsServer, name: string, type: number): Promise<DnsAnswer> {
    if (this.closed) return Promise.reject(new Error('DNS client closed'))
    const sock = this.socket(isIP(server.address) === 6 ? 6 : 4)
    let id = randomInt(0, 65536)
    while (this.pending.has(id)) id = (id + 1) & 0xffff
    const query = encodeQuery(id, name, type)
    return new Promise<DnsAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`no answer from ${server.address}:${server.port} for ${name} within ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      timer.unref()
      this.pending.set(id, { server, name: name.toLowerCase(), type, resolve, timer })
      sock.send(query, server.port, server.address, (err) => {
        if (!err) return
        // ICMP unreachable and friends: this try failed now, not at its timeout.
        const p = this.pending.get(id)
        if (p?.timer !== timer) return
        clearTimeout(timer)
        this.pending.delete(id)
        reject(err)
      })
    })
  }

  private socket(family: 4 | 6): Socket {
    const existing = this.sockets[family]
    if (existing) return existing
    const sock = createSocket(family === 4 ? 'udp4' : 'udp6')
    sock.on('message', (buf, rinfo) => this.onMessage(buf, rinfo.address, rinfo.port))
    // A refused port (ICMP) shows up here on some kernels; the try's timeout or send callback handles it.
    sock.on('error', () => {})
    sock.unref()
    this.sockets[family] = sock
    return sock
  }

  private onMessage(buf: Buffer, address: string, port: number): void {
    if (buf.length < 12) return
    const p = this.pending.get(buf.readUInt16BE(0))
    if (!p || p.server.port !== port || !sameAddress(p.server.address, address)) return
    let a: DnsAnswer
    try {
      a = decodeAnswer(buf)
    } catch {
      return // malformed: the try times out, the next server is asked
    }
    if (!a.question || a.question.type !== p.type || a.question.name.toLowerCase() !== p.name.replace(/\.$/, '')) return
    clearTimeout(p.timer)
    this.pending.delete(a.id)
    p.resolve(a)
  }
}

function sameAddress(a: string, b: string): boolean {
  return a === b || a.replace(/^::ffff:/, '') === b.replace(/^::ffff:/, '')
}
