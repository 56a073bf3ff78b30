export type { AdminState, HealthState, Algorithm, BackendSpec, BackendTarget, SelectContext, BackendSink } from './types.js'
export { Backend, parseBackendUri, targetKey, targetHostport } from './backend.js'
export { Dispatcher, type DispatcherOptions, type BackendChange } from './dispatcher.js'
export { Prober, type ProberOptions, type ProbeOutcome } from './prober.js'
