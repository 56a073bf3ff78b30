import { readFile } from 'node:fs/promises'
import { createSecureContext, createServer, type SecureContext, type SecureContextOptions, type Server, type TLSSocket } from 'node:tls'
import type { TransportContext } from './connection.js'
import type { TlsOptions } from './options.js'
import { ServerListener } from './server-listener.js'
import { StreamConnection } from './stream-connection.js'
import type { ListenSpec } from './types.js'

/** RFC 3261 §26.2.1 asks for TLS; anything older than 1.2 is broken (RFC 8996). */
export const TLS_MIN_VERSION = 'TLSv1.2'

/** Certificates as loaded from the configured files: what listeners serve and what outgoing TLS trusts. */
export interface TlsMaterial {
  /** Context options for tls/wss listeners; undefined when no certificate and key are configured. */
  server: SecureContextOptions | undefined
  /** For outgoing TLS: the CA bundle to verify servers against (Node's roots without caFile), our cert as client cert. */
  client: SecureContext
}

/** A listener whose certificate can be swapped while it runs (tls:, wss:). */
export interface SecureListener {
  readonly spec: ListenSpec
  setSecureContext(options: SecureContextOptions): void
}

async function readPem(file: string, what: string): Promise<Buffer> {
  try {
    return await readFile(file)
  } catch (err) {
    throw new Error(`TLS ${what} '${file}': ${(err as { code?: string }).code ?? (err as Error).message}`, { cause: err })
  }
}

/**
 * Read the PEM files and check they make working contexts (a key that does not match its certificate
 * fails here, not at the first handshake). `needServer`: some listener serves TLS; `needClientCa`: some
 * listener requires client certificates.
 */
export async function loadTlsMaterial(o: TlsOptions, needServer: boolean, needClientCa: boolean): Promise<TlsMaterial> {
  const cert = o.certFile !== undefined ? await readPem(o.certFile, 'certificate') : undefined
  const key = o.keyFile !== undefined ? await readPem(o.keyFile, 'key') : undefined
  const ca = o.caFile !== undefined ? await readPem(o.caFile, 'CA bundle') : undefined
  const clientCa = o.clientCaFile !== undefined ? await readPem(o.clientCaFile, 'client CA bundle') : ca
  if ((cert === undefined) !== (key === undefined)) throw new Error('TLS: a certificate file needs its key file and a key its certificate')
  if (needServer && cert === undefined) throw new Error('TLS: tls/wss listeners need a certificate file and a key file')
  if (needClientCa && clientCa === undefined) throw new Error("TLS: 'client-cert require' needs a client CA file (or a CA file)")
  let server: SecureContextOptions | undefined
  let client: SecureContext
  try {
    server = cert !== undefined ? { cert, key, ca: clientCa, minVersion: TLS_MIN_VERSION } : undefined
    if (server !== undefined) createSecureContext(server)
    client = createSecureContext({ cert, key, ca, minVersion: TLS_MIN_VERSION })
  } catch (err) {
    throw new Error(`TLS: ${(err as Error).message} (${o.certFile ?? ''} ${o.keyFile ?? ''} ${o.caFile ?? ''})`.trimEnd(), { cause: err })
  }
  return { server, client }
}

/** Server options common to tls: and wss: listeners. The certificate comes later, by setSecureContext. */
export function tlsServerOptions(spec: ListenSpec, ctx: TransportContext) {
  return {
    requestCert: spec.clientCert === 'require',
    rejectUnauthorized: true,
    handshakeTimeout: ctx.opts.tlsHandshakeTimeoutMs,
    minVersion: TLS_MIN_VERSION,
  } as const
}

/** A `tls:` listen socket: TCP framing (shared StreamConnection) once the handshake is done. */
export class TlsListener extends ServerListener implements SecureListener {
  private readonly tlsServer: Server

  constructor(id: number, spec: ListenSpec, ctx: TransportContext) {
    super(id, spec, ctx)
    this.tlsServer = createServer(tlsServerOptions(spec, ctx), this.onSecureConnection)
    // Handshake failures (plain text on the port, unknown client CA, timeouts) close only that socket.
    this.tlsServer.on('tlsClientError', this.onHandshakeError)
    this.attach(this.tlsServer)
  }

  /** Swap the certificate: new handshakes use it, established connections keep theirs. */
  setSecureContext(options: SecureContextOptions): void {
    this.tlsServer.setSecureContext(options)
  }

  private readonly onSecureConnection = (socket: TLSSocket): void => {
    const { remoteAddress, remotePort } = socket
    if (!this.admit() || remoteAddress === undefined || remotePort === undefined) return void socket.destroy()
    new StreamConnection(this.ctx, socket, this, { proto: 'tls', address: remoteAddress, port: remotePort }, true)
  }

}
