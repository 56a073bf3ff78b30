/**
 * Rules that involve several keys, checked on the merged configuration (after every layer): required keys
 * of optional sections, listeners that cannot bind together, duplicate backends, probe timing, sets that no
 * backend names, an admin API open without a token.
 */
import { isIP } from 'node:net'
import { nearest } from './fields.js'
import { CONFIG, type EdgeConfig, type Shape } from './keys.js'
import type { Problem } from './schema.js'
import { parseBackendSpec, parseHostPort, parseInboundTrunk, parseListenSpec } from './syntax.js'

export function crossCheck(c: EdgeConfig, out: Problem[], warnings: string[]): void {
  for (const [key, e] of Object.entries(CONFIG as Shape)) {
    if (e.type !== 'section') continue
    const obj = (c as Record<string, unknown>)[key] as Record<string, unknown> | undefined
    for (const r of e.required) {
      if (obj && obj[r] === undefined) out.push({ path: `${key}.${r}`, problem: `is required when ${key} is configured` })
    }
  }
  if (c.etcd?.endpoints?.length === 0) out.push({ path: 'etcd.endpoints', problem: 'must list at least one endpoint' })
  if (c.listen.length === 0) out.push({ path: 'listen', problem: 'must list at least one listener' })
  const seen = new Map<string, string>()
  const sockets = [
    ...c.listen.map((s, i) => [s, `listen[${i}]`, 'public'] as const),
    ...c.internalListen.map((s, i) => [s, `internalListen[${i}]`, 'internal'] as const),
  ]
  let secureListener: string | undefined
  for (const [s, path, side] of sockets) {
    const spec = parseListenSpec(s, side)
    if (typeof spec === 'string') continue
    if (spec.proto === 'tls' || spec.proto === 'wss') secureListener ??= path
    const k = `${spec.proto}:${spec.host}:${spec.port}`
    const prev = seen.get(k)
    if (prev && spec.port !== 0) out.push({ path, problem: `"${s}" is already used by ${prev}` })
    else seen.set(k, path)
  }
  if (secureListener !== undefined && (c.tls.certFile === undefined || c.tls.keyFile === undefined)) {
    out.push({ path: c.tls.certFile === undefined ? 'tls.certFile' : 'tls.keyFile', problem: `is required by the TLS listener ${secureListener}` })
  }
  // A listening TCP wildcard holds the port on every address (Linux): a specific TCP listener on the same
  // port cannot bind. UDP can share (see transport/transports.ts sharesWildcardPort).
  const tcp = sockets.flatMap(([s, path]) => {
    const spec = parseListenSpec(s, 'public')
    return typeof spec === 'string' || spec.proto !== 'tcp' || spec.port === 0 ? [] : [{ spec, path, s }]
  })
  for (const a of tcp) {
    if (a.spec.host !== '0.0.0.0' && a.spec.host !== '::') continue
    for (const b of tcp) {
      if (b === a || b.spec.port !== a.spec.port || b.spec.host === a.spec.host) continue
      if (isIP(b.spec.host) !== isIP(a.spec.host)) continue
      out.push({
        path: b.path,
        problem:
          `"${b.s}" cannot bind next to ${a.path} "${a.s}": a TCP wildcard takes port ${a.spec.port} on every address. ` +
          `Use another port for one of them, or bind the public side to its specific address (UDP may share a port with a wildcard)`,
      })
    }
  }
  const ids = new Map<string, number>()
  c.backends.forEach((s, i) => {
    const b = parseBackendSpec(s)
    if (typeof b === 'string') return
    const key = `${b.set}/${b.id}`
    const prev = ids.get(key)
    if (prev !== undefined) out.push({ path: `backends[${i}]`, problem: `"${s}" duplicates backends[${prev}] in set ${b.set}` })
    else ids.set(key, i)
    // Outgoing TLS leaves from a tls: listener (its address, and the certificate material it loads).
    if (/;transport=tls\b/i.test(b.uri) && !sockets.some(([l]) => l.startsWith('tls:'))) out.push({ path: `backends[${i}]`, problem: `"${s}" needs a tls: listener` })
  })
  if (c.probe.timeoutMs >= c.probe.intervalMs) {
    out.push({ path: 'probe.timeoutMs', problem: `${c.probe.timeoutMs} must be less than probe.intervalMs (${c.probe.intervalMs})` })
  }
  if (c.backends.length === 0 && !c.etcd) {
    warnings.push('no backends configured (backends or etcd): every new call will be answered 503')
  }
  // With etcd, sets come and go at run time; without it, a set no backend names is a typo.
  if (!c.etcd) {
    const sets = [...new Set([...ids.keys()].map((id) => id.slice(0, id.indexOf('/'))))]
    c.inboundTrunks.forEach((entry, i) => {
      const trunk = parseInboundTrunk(entry)
      if (typeof trunk === 'string' || trunk.set === undefined || sets.includes(trunk.set)) return
      const near = nearest(trunk.set, sets)
      out.push({ path: `inboundTrunks[${i}]`, problem: `"${entry}": no backend is in set "${trunk.set}"${near ? ` (did you mean ${near}?)` : ''}; sets: ${sets.join(', ') || 'none'}` })
    })
    for (const s of Object.keys(c.setAlgorithms)) {
      if (sets.includes(s)) continue
      const near = nearest(s, sets)
      out.push({
        path: `setAlgorithms.${s}`,
        problem: `no backend is in set "${s}"${near ? ` (did you mean ${near}?)` : ''}; sets: ${sets.join(', ') || 'none'}`,
      })
    }
  }
  crossCheckMedia(c, [...new Set([...ids.keys()].map((id) => id.slice(0, id.indexOf('/'))))], out)
  if (c.admin && !c.adminToken) {
    const hp = parseHostPort(c.admin)
    if (hp && !(hp.host.startsWith('127.') || hp.host === '::1')) {
      warnings.push(`admin: ${c.admin} is not loopback and no adminToken is set: anyone who reaches it can drain backends`)
    }
  }
}

/** The media keys together: an anchoring set needs an rtpengine; timings that cannot work; sets that exist. */
export function crossCheckMedia(c: Pick<EdgeConfig, 'media' | 'etcd'>, sets: string[] | undefined, out: Problem[]): void {
  const m = c.media
  const anchoring = m.mode === 'anchor' || Object.values(m.sets).some((s) => s.mode === 'anchor')
  if (anchoring && m.rtpengine.length === 0) {
    const why = m.mode === 'anchor' ? 'media.mode is anchor' : `media.sets.${Object.entries(m.sets).find(([, s]) => s.mode === 'anchor')![0]} is anchor`
    out.push({ path: 'media.rtpengine', problem: `must list at least one rtpengine (udp:IP:PORT) when ${why}` })
  }
  if (m.retransmitMs > m.timeoutMs) out.push({ path: 'media.retransmitMs', problem: `${m.retransmitMs} must not exceed media.timeoutMs (${m.timeoutMs})` })
  if (m.ping.timeoutMs >= m.ping.intervalMs) {
    out.push({ path: 'media.ping.timeoutMs', problem: `${m.ping.timeoutMs} must be less than media.ping.intervalMs (${m.ping.intervalMs})` })
  }
  const seen = new Map<string, number>()
  m.rtpengine.forEach((s, i) => {
    const k = s.trim().replace(/^udp:/, '').replace(/;.*$/, '')
    const prev = seen.get(k)
    if (prev !== undefined) out.push({ path: `media.rtpengine[${i}]`, problem: `"${s}" duplicates media.rtpengine[${prev}]` })
    else seen.set(k, i)
  })
  if (c.etcd || sets === undefined) return
  for (const s of Object.keys(m.sets)) {
    if (sets.includes(s)) continue
    const near = nearest(s, sets)
    out.push({ path: `media.sets.${s}`, problem: `no backend is in set "${s}"${near ? ` (did you mean ${near}?)` : ''}; sets: ${sets.join(', ') || 'none'}` })
  }
}
