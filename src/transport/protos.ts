import type { TransportProto } from './types.js'

const VIA_NAMES: Readonly<Record<TransportProto, string>> = { udp: 'UDP', tcp: 'TCP', tls: 'TLS', ws: 'WS', wss: 'WSS' }

/** The transport token of a Via header for a protocol (`SIP/2.0/WSS ...`, RFC 7118 §5.1). */
export function viaTransport(proto: TransportProto): string {
  return VIA_NAMES[proto]
}

/** The protocol named by a Via transport token (any case), undefined for ones the edge does not speak (SCTP...). */
export function protoOfVia(token: string): TransportProto | undefined {
  switch (token.toUpperCase()) {
    case 'UDP': return 'udp'
    case 'TCP': return 'tcp'
    case 'TLS': return 'tls'
    case 'WS': return 'ws'
    case 'WSS': return 'wss'
    default: return undefined
  }
}

/** Connection-oriented: replies go back on the connection, never to the Via port (RFC 3261 §18.2.2). */
export function isConnectionProto(proto: TransportProto): boolean {
  return proto !== 'udp'
}

/** WebSocket peers cannot be connected to: a message for one goes over its own connection or nowhere. */
export function isWebSocketProto(proto: TransportProto): boolean {
  return proto === 'ws' || proto === 'wss'
}

/**
 * The `;transport=` URI parameter naming a listener in Record-Route and Contact: none for UDP (the
 * default), `ws` for both WebSocket flavours (RFC 7118 §5.2; secure is `wss` only in Via).
 */
export function uriTransportParam(proto: TransportProto): string {
  switch (proto) {
    case 'udp': return ''
    case 'tcp': return ';transport=tcp'
    case 'tls': return ';transport=tls'
    case 'ws':
    case 'wss': return ';transport=ws'
  }
}

/** The protocol a URI asks for: its `transport` parameter (any case), else TLS for `sips:` and UDP for `sip:`. */
export function protoOfUri(transport: string | true | undefined, secure: boolean): TransportProto {
  if (typeof transport === 'string') {
    const t = transport.toLowerCase()
    if (t === 'tcp') return secure ? 'tls' : 'tcp'
    if (t === 'tls') return 'tls'
    if (t === 'ws') return secure ? 'wss' : 'ws'
    if (t === 'wss') return 'wss'
  }
  return secure ? 'tls' : 'udp'
}

/** Token byte for a protocol in the sealed flows of Record-Route/Contact tokens (0 and 1 as before TLS/WS). */
export const PROTO_CODES: readonly TransportProto[] = ['udp', 'tcp', 'tls', 'ws', 'wss']
