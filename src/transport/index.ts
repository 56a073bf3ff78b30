export { Transports } from './transports.js'
export { parseListenSpec, formatHostport, familyOf } from './listen-spec.js'
export type { TransportOptions, TransportHandlers } from './options.js'
export type { Inbound, Listener, ListenSpec, Peer, Side, TransportProto, TransportEvents } from './types.js'
