// Backend discovery: static entries, the etcd watch, and the `register` side run next to Asterisk.
export { staticBackends, StaticBackendError } from './static.js'
export { EtcdSource, type EtcdSourceOptions, type EtcdSourceState } from './etcd_source.js'
export { createEtcdClient, type EtcdConnectOptions } from './etcd_client.js'
export { register, runRegister, parseRegisterArgs, REGISTER_USAGE, type RegisterOptions, type RegisterIo } from './register.js'
export { DEFAULT_PREFIX, backendKey, parseBackendValue, splitBackendKey } from './backend_value.js'
export { parseBackendUri, formatBackendUri, type BackendUri } from './backend_uri.js'
export { readActiveCalls, type CallsReading } from './calls_probe.js'
