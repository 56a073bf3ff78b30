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
