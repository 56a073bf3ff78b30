// RFC 3263 next hops by name: the resolver the proxy asks (resolver.ts), over a small DNS stub client.
export { NextHopResolver, type NextHopResolverOptions, type DnsLog } from './resolver.js'
export { hopName, type HopName } from './rfc3263.js'
export { parseServer, parseServers } from './client.js'
