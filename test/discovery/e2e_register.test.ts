// Issue 5 end to end: `sipedge register` processes announce SIPp backends in a real etcd, an in-process edge
// discovers them (etcd only, no static backends) and real SIPp calls go through it. Covers the spread over
// registered backends, a registrant killed (lease expiry), a registrant drained by SIGTERM, and a backend
// removed and re-added under the same URI. Every measured time is printed with t.comment.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { Etcd3 } from 'etcd3'
import type { Backend } from '../../src/dispatch/backend.js'
import type { BackendChange } from '../../src/dispatch/dispatcher.js'
import { startEdge, type TestEdge } from '../helpers/edge.js'
import { startEtcd, type EtcdHandle } from '../helpers/etcd.js'
import { waitFor } from '../helpers/net.js'
import { spawnTracked, waitForLine, type Teardownable, type TrackedChild } from '../helpers/proc.js'
import { describe, runUac, sippAvailable, startUas, type SippResult, type SippUas } from '../helpers/sipp.js'

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/edge/cli.js')
const PREFIX = '/h9-e2e/backends/'
const TTL_S = 2
/** An INVITE forwarded just before the edge dropped a backend may be read by SIPp a few ms later. */
const IN_FLIGHT_SLACK_MS = 50

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')
if (!existsSync(CLI)) t.fail(`${CLI} is missing: run "npm run build" first`)

/** Runs `sipedge register` for one UAS and resolves once it logged "registered". */
async function registrant(t: Teardownable, endpoint: string, uas: SippUas, extra: string[] = []): Promise<TrackedChild> {
  const args = [CLI, 'register', '--etcd', endpoint, '--prefix', PREFIX, '--set', 'default', '--uri', `sip:${uas.id}`, '--ttl', String(TTL_S), ...extra]
  const proc = spawnTracked(process.execPath, args, { t })
  try {
    await waitForLine(proc, /"msg":"registered"/, 10_000)
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${proc.output().stdout}${proc.output().stderr}`)
  }
  return proc
}

interface Received {
  method: string
  callId: string
  /** Wall clock (ms) at which SIPp read the message. */
  at: number
}

/** Requests a SIPp instance received, from its -trace_msg file (blocks start with a local timestamp). */
function receivedRequests(uas: SippUas): Received[] {
  const text = readFileSync(join(uas.dir, 'messages.log'), 'utf8')
  const out: Received[] = []
  for (const block of text.split('----------------------------------------------- ').slice(1)) {
    const head = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3})\d*\s*\n\w+ message received[^\n]*\n\s*([A-Z]+) sip:/.exec(block)
    if (!head) continue
    const callId = /\nCall-ID:\s*(\S+)/i.exec(block)
    out.push({ method: head[3]!, callId: callId ? callId[1]! : '', at: new Date(`${head[1]}T${head[2]}`).getTime() })
  }
  return out
}

/** Call-IDs whose first INVITE reached this UAS at or after `since`. */
function newCallsSince(reqs: readonly Received[], since: number): string[] {
  const first = new Map<string, number>()
  for (const r of reqs) if (r.method === 'INVITE' && !first.has(r.callId)) first.set(r.callId, r.at)
  return [...first].filter(([, at]) => at >= since).map(([id]) => id)
}

/** Resolves with Date.now() when the edge reports `change` for the backend with this URI. */
function nextChange(edge: TestEdge, uri: string, change: BackendChange, admin?: string): Promise<number> {
  return new Promise((resolve) => {
    const on = (b: Backend, what: BackendChange): void => {
      if (b.uri !== uri || what !== change || (admin !== undefined && b.admin !== admin)) return
      edge.edge.off('backend', on)
      resolve(Date.now())
    }
    edge.edge.on('backend', on)
  })
}

interface AdminBackend {
  id: string
  uri: string
  admin: string
  activeCalls: number
}

async function adminBackends(edge: TestEdge): Promise<AdminBackend[]> {
  const res = await fetch(`http://127.0.0.1:${edge.edge.adminPort}/backends`)
  return (await res.json()) as AdminBackend[]
}

function okCalls(t: Test, uac: SippResult, calls: number): void {
  t.equal(uac.failed, 0, `no failed call: ${describe(uac)}`)
  t.equal(uac.successful, calls, `${calls} calls answered`)
}

const root = t

// One etcd, three SIPp backends and one edge shared by the subtests, which run in order.
let etcd: EtcdHandle
let edge: TestEdge
const uas: SippUas[] = []
const reg: TrackedChild[] = []
const uri = (i: number): string => `sip:${uas[i]!.id}`

t.before(async () => {
  etcd = await startEtcd()
  for (let i = 1; i <= 3; i++) uas.push(await startUas({ scenario: 'uas', ip: `127.0.8.${10 + i}`, t }))
  edge = await startEdge(t, '127.0.8.100', { etcd: { endpoints: [etcd.endpoint], prefix: PREFIX }, admin: '127.0.0.1:0', logLevel: 'silent' })
})
t.teardown(async () => {
  await etcd?.cleanup()
})

t.test('three registrants, etcd only: 60 calls at 30 cps spread evenly', async (t) => {
  const began = Date.now()
  const admin = `http://127.0.0.1:${edge.edge.adminPort}`
  for (const u of uas) reg.push(await registrant(root, etcd.endpoint, u, ['--edge-admin', admin]))
  await waitFor(() => edge.edge.dispatcher.backends().length === 3, { timeoutMs: 5000, what: 'three backends at the edge' })
  t.comment(`3 registrant processes started and seen by the edge in ${Date.now() - began} ms`)
  t.same(
    edge.edge.dispatcher.backends().map((b) => [b.uri, b.source, b.admin]).sort(),
    [0, 1, 2].map((i) => [uri(i), 'etcd', 'active']).sort(),
    'the edge holds exactly the registered backends, from etcd',
  )
  const uac = await runUac({ scenario: 'uac', target: edge.target, calls: 60, rate: 30, localIp: '127.0.8.200', traceMsg: false, t })
  okCalls(t, uac, 60)
  const spread = Object.fromEntries(edge.edge.callsByBackend().map((c) => [c.hostport, c.calls]))
  t.comment(`spread: ${JSON.stringify(spread)}`)
  t.same(spread, Object.fromEntries(uas.map((u) => [u.id, 20])), 'round-robin: 20 calls on each backend')
})

t.test('registrant SIGKILLed: the lease expires, the edge drops the backend, new calls avoid it', async (t) => {
  const victim = 2
  const removed = nextChange(edge, uri(victim), 'removed')
  // Steady load over the whole lease expiry: 10 cps for 5 s.
  const load = runUac({ scenario: 'uac', target: edge.target, calls: 50, rate: 10, localIp: '127.0.8.201', traceMsg: false, t })
  await new Promise((r) => setTimeout(r, 1000)) // calls are flowing to all three
  const killedAt = Date.now()
  reg[victim]!.kill('SIGKILL')
  const removedAt = await Promise.race([removed, new Promise<number>((r) => setTimeout(() => r(0), TTL_S * 1000 + 3000))])
  t.ok(removedAt > 0, 'the edge removed the backend')
  const removalMs = removedAt - killedAt
  t.comment(`SIGKILL -> backend removed at the edge: ${removalMs} ms (lease TTL ${TTL_S} s)`)
  t.ok(removalMs >= 500 && removalMs <= TTL_S * 1000 + 1000, `removal follows the lease TTL (${removalMs} ms)`)
  okCalls(t, await load, 50)

  const since = removedAt + IN_FLIGHT_SLACK_MS
  const late = newCallsSince(receivedRequests(uas[victim]!), since)
  t.same(late, [], 'the killed backend got no new call after its removal')
  for (const i of [0, 1]) {
    t.ok(newCallsSince(receivedRequests(uas[i]!), since).length >= 5, `${uas[i]!.id} took new calls after the removal`)
  }
  t.notOk(edge.edge.dispatcher.backends().some((b) => b.uri === uri(victim)), 'not in the live set any more')
})

t.test('registrant SIGTERMed mid-call: draining, calls in progress end, lease revoked after', async (t) => {
  const victim = 1
  const draining = nextChange(edge, uri(victim), 'admin', 'draining')
  const removed = nextChange(edge, uri(victim), 'removed')
  const atVictim = (): Promise<number> => adminBackends(edge).then((l) => l.find((b) => b.uri === uri(victim))?.activeCalls ?? -1)
  // 20 calls at 10 cps, each held 2 s: the drain starts while the victim carries several calls.
  const load = runUac({ scenario: 'uac', target: edge.target, calls: 20, rate: 10, durationMs: 2000, localIp: '127.0.8.202', traceMsg: false, t })
  const carrying = await waitFor(async () => {
    const n = await atVictim()
    return n >= 2 ? n : 0
  }, { timeoutMs: 5000, what: 'calls in progress on the victim' })
  const termAt = Date.now()
  reg[victim]!.kill('SIGTERM')
  const drainAt = await draining
  t.comment(`SIGTERM with ${carrying} calls in progress -> draining at the edge: ${drainAt - termAt} ms`)
  t.ok(drainAt - termAt < 2000, 'draining seen within 2 s')
  t.ok(edge.edge.dispatcher.backends().some((b) => b.uri === uri(victim)), 'still listed while its calls go on')

  const removedAt = await Promise.race([removed, new Promise<number>((r) => setTimeout(() => r(0), 10_000))])
  t.ok(removedAt > 0, 'removed once its calls ended')
  t.equal(await reg[victim]!.exited, 0, 'registrant exits 0 after the drain')
  okCalls(t, await load, 20)

  const reqs = receivedRequests(uas[victim]!)
  // The edge ends a dialog when it forwards the BYE, so the last BYE the backend read is when its last call ended.
  const lastByeAt = Math.max(...reqs.filter((r) => r.method === 'BYE').map((r) => r.at))
  t.ok(removedAt >= lastByeAt, 'the lease was revoked only after the last call ended')
  t.comment(`drain: last call ended ${lastByeAt - drainAt} ms after draining; lease revoked and backend removed ${removedAt - lastByeAt} ms after that (registrant polls the edge every 1 s); SIGTERM -> removed ${removedAt - termAt} ms`)
  t.same(newCallsSince(reqs, drainAt + IN_FLIGHT_SLACK_MS), [], 'no new call reached the draining backend')
  const byes = reqs.filter((r) => r.method === 'BYE' && r.at >= drainAt).length
  t.ok(byes >= carrying, `the BYEs of its calls in progress reached it (${byes} after draining, ${carrying} in progress)`)
  const res = await uas[victim]!.stop()
  t.equal(res.failed, 0, 'the drained backend failed no call')
  t.equal(res.successful, res.counters.IncomingCall, `every call it received completed (${res.successful})`)
})

t.test('a backend removed and re-added with the same URI is the same backend: calls are not counted twice', async (t) => {
  const d = await startUas({ scenario: 'uas', ip: '127.0.8.14', t })
  const dUri = `sip:${d.id}`
  const value = JSON.stringify({ uri: dUri, weight: 1, priority: 0, state: 'active' })
  const client = new Etcd3({ hosts: etcd.endpoint })
  t.teardown(() => client.close())
  await client.put(`${PREFIX}default/d`).value(value)
  const first = (await waitFor(() => edge.edge.dispatcher.get('default/d'), { timeoutMs: 3000, what: 'backend d at the edge' }))!

  // The invariant: the per-backend counts add up to the calls in progress, never more.
  const counted = async (): Promise<{ sum: number; dialogs: number; d: AdminBackend[] }> => {
    const d = (await adminBackends(edge)).filter((b) => b.uri === dUri)
    // Sum and dialog count read together, synchronously: an HTTP round trip between them would race call ends.
    const sum = edge.edge.dispatcher.backends().reduce((n, b) => n + b.activeCalls, 0)
    return { sum, dialogs: edge.edge.proxy.dialogs.size, d }
  }
  const load = runUac({ scenario: 'uac', target: edge.target, calls: 20, rate: 10, durationMs: 1500, localIp: '127.0.8.203', traceMsg: false, t })
  const before = (await waitFor(async () => {
    const c = await counted()
    return c.d[0] && c.d[0].activeCalls >= 2 ? c : undefined
  }, { timeoutMs: 5000, what: 'calls in progress on d' }))!

  await client.delete().key(`${PREFIX}default/d`)
  await waitFor(() => !edge.edge.dispatcher.backends().some((b) => b.uri === dUri), { timeoutMs: 3000, what: 'd removed' })
  t.ok(first.retired, 'removed while its calls go on')
  await client.put(`${PREFIX}default/d`).value(value)
  // The same address under a second id at once: still one backend.
  await client.put(`${PREFIX}default/d-again`).value(value)
  await waitFor(() => edge.edge.dispatcher.get('default/d-again'), { timeoutMs: 3000, what: 'd re-added twice' })
  t.equal(edge.edge.dispatcher.get('default/d'), first, 're-added under the same id: the same Backend object')
  t.equal(edge.edge.dispatcher.get('default/d-again'), first, 'same URI under another id: the same Backend object')
  t.notOk(first.retired, 'live again')

  let worst = 0
  let samples = 0
  let listedWrong = 0
  for (let done = false; !done; ) {
    const settled = await Promise.race([load.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 50))])
    done = settled
    const c = await counted()
    samples++
    if (c.d.length !== 1) listedWrong++
    worst = Math.max(worst, c.sum - c.dialogs)
  }
  t.equal(listedWrong, 0, 'd listed exactly once in /backends at every sample')
  t.equal(worst, 0, `per-backend counts never exceeded the calls in progress (${samples} samples, ${before.d[0]!.activeCalls} on d at removal)`)
  okCalls(t, await load, 20)
  const after = await counted()
  t.equal(after.d[0]?.activeCalls, 0, 'no call left counted on d')
  t.equal(after.sum, 0, 'no call left counted anywhere')
  const res = await d.stop()
  t.equal(res.failed, 0, 'd failed no call')
  t.ok(res.successful >= 5, `d kept taking calls across remove/re-add (${res.successful})`)
  const dCalls = edge.edge.callsByBackend().filter((c) => c.hostport === d.id)
  t.equal(dCalls.length, 1, 'one call tally for d, not one per re-add')
  t.equal(dCalls[0]?.calls, res.successful, 'the edge counted exactly the calls d answered')
})
