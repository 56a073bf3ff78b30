/**
 * sipedge as a library: run an edge in-process (`createEdge`) with hooks for custom SBC logic, or use the
 * message core (`parseMessage`, `MessageEditor`, builders) on its own.
 */
export { VERSION } from './version.js'

// The edge
export { createEdge, Edge, type EdgeOptions, type EdgeEvents } from './edge/edge.js'
export { DEFAULT_CONFIG, loadConfig, validateConfig, type EdgeConfig } from './edge/config.js'
export type { ProxyHooks, RequestContext, ResponseContext } from './proxy/hooks.js'
export type { Dialog } from './proxy/dialogs.js'
export { TokenCodec, type RouteToken, type ContactToken } from './proxy/tokens.js'

// Backends and discovery
export { Backend, Dispatcher, Prober, type BackendChange } from './dispatch/index.js'
export type { AdminState, HealthState, Algorithm, BackendSpec, BackendTarget, SelectContext, BackendSink } from './dispatch/types.js'
export { EtcdSource, type EtcdSourceOptions, type EtcdSourceState } from './discovery/etcd_source.js'
export { register, runRegister } from './discovery/register.js'

// Transports
export { Transports, parseListenSpec } from './transport/index.js'
export type { Inbound, Listener, ListenSpec, Peer, Side, TransportProto } from './transport/types.js'

// The SIP message core
export * from './sip/index.js'

// Stand-ins for tests and demos
export { StandInBackend, type StandInOptions } from './edge/standin.js'
export { runCaller, type CallerOptions, type CallerResult } from './edge/caller.js'
