// The SIPS URI scheme (RFC 3261 §26.2.2, RFC 5630): a request whose Request-URI is `sips:` must travel over
// TLS on every hop. The edge takes one only over TLS or WSS (else 416), forwards it only over TLS or WSS
// (else 480 with warn-code 380), and the Record-Route it adds uses `sips:` so that the dialog's later
// requests keep to TLS.
import type { SipMessage } from '../sip/index.js'
import type { TransportProto } from '../transport/types.js'

/** Transports that carry SIPS: TLS, and WebSocket over TLS (RFC 7118 §5). */
export function isSecureTransport(proto: TransportProto): boolean {
  return proto === 'tls' || proto === 'wss'
}

/** The Request-URI is `sips:` (the parsed URI is cached on the message; routing reads it anyway). */
export function isSipsRequest(msg: SipMessage): boolean {
  return msg.uri.scheme === 'sips'
}

/** The Warning of a sips request the edge cannot forward over TLS (RFC 5630 §8: 380 SIPS Not Allowed). */
export function sipsNotAllowed(hostport: string): [string, string] {
  return ['Warning', `380 ${hostport} "SIPS Not Allowed"`]
}
