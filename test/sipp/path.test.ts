// RFC 3327 Path through the edge, with SIPp on every side: a phone behind NAT registers through the edge to a
// registrar stand-in that stores the Path (as Asterisk does with support_path=yes); a backend then calls the
// phone by the stored Contact with the stored Path as its Route, and the call reaches the phone's flow, both
// ways, with nothing of the inside showing; the phone re-registers and un-registers on the same registrar.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { startEdge, type TestEdge } from '../helpers/edge.js'
import { freePort, waitFor } from '../helpers/net.js'
import { runUac, sippAvailable, startUas, type SippResult, type SippUas } from '../helpers/sipp.js'
import type { Teardownable } from '../helpers/proc.js'

const DIR = join(import.meta.dirname, 'path')
const PUBLIC = '127.0.0.1'
const INTERNAL = '127.0.0.2'
const PHONE = '127.0.0.3'

if (!sippAvailable()) throw new Error('sipp is required (apt-get install sip-tester)')

async function edgeOn(t: Teardownable, pub: number, inner: number, backends: string[]): Promise<TestEdge> {
  return startEdge(t, PUBLIC, {
    listen: [`udp:${PUBLIC}:${pub}`, `tcp:${PUBLIC}:${pub}`],
    internalListen: [`udp:${INTERNAL}:${inner}`],
    backends,
  }, pub)
}

function logsOf(uas: SippUas): string {
  const f = join(uas.dir, 'logs.log')
  return existsSync(f) ? readFileSync(f, 'utf8') : ''
}

/** The SIP start lines and header lines SIPp traced (SDP bodies are not the edge's to rewrite: README "Limits"). */
function sipLinesOf(r: SippResult): string {
  const text = r.messages ? readFileSync(r.messages, 'utf8') : ''
  return text.split('\n').filter((l) => /^([A-Za-z-]+: |SIP\/2\.0 |[A-Z]+ sips?:)/.test(l)).join('\n')
}

/** The binding the registrar stored, from its log line (`registered path=<...> contact=...`). */
async function binding(registrars: SippUas[]): Promise<{ registrar: SippUas; path: string; contact: string }> {
  return waitFor(() => {
    for (const r of registrars) {
      const m = /registered path=(<[^>]*>) contact=(\S+)/.exec(logsOf(r))
      if (m) return { registrar: r, path: m[1]!, contact: m[2]! }
    }
    return undefined
  }, { timeoutMs: 5000, what: 'a registrar stored the binding' })
}

async function registrars(t: Teardownable): Promise<SippUas[]> {
  return [
    await startUas({ t, scenario: join(DIR, 'registrar.xml'), ip: '127.0.1.1' }),
    await startUas({ t, scenario: join(DIR, 'registrar.xml'), ip: '127.0.1.2' }),
  ]
}

function phone(t: Teardownable, edge: TestEdge, transport: 'udp' | 'tcp', pauseMs: number): Promise<SippResult> {
  return runUac({
    t, scenario: join(DIR, 'phone_register.xml'), target: edge.target, localIp: PHONE, transport, calls: 1,
    durationMs: pauseMs, timeoutS: 20, extra: ['-oocsf', join(DIR, 'phone_callee.xml')],
  })
}

function backendCall(t: Teardownable, b: { path: string; contact: string }, innerPort: number): Promise<SippResult> {
  return runUac({
    t, scenario: join(DIR, 'backend_call.xml'), target: `${INTERNAL}:${innerPort}`, localIp: '127.0.1.1', calls: 1,
    timeoutS: 10, extra: ['-key', 'path', b.path, '-key', 'contact', b.contact],
  })
}

async function phoneGetsCall(t: Tap.Test, transport: 'udp' | 'tcp', restartEdge: boolean): Promise<void> {
  const pub = await freePort(PUBLIC)
  const inner = await freePort(INTERNAL)
  const regs = await registrars(t)
  const backends = regs.map((r) => `sip:${r.id}`)
  let edge = await edgeOn(t, pub, inner, backends)
  const phoneRun = phone(t, edge, transport, 4000)
  const b = await binding(regs)

  t.match(b.path, new RegExp(`^<sip:${INTERNAL.replace(/\./g, '\\.')}:${inner};lr;fl=[A-Za-z0-9_-]+>$`), 'the Path names the edge on the internal side, with a sealed flow token')
  t.notMatch(b.path, PHONE, 'the flow token shows nothing of the phone in clear')
  t.match(b.contact, `alice@${PHONE}:5999`, 'the Contact is stored as the phone wrote it (not rewritten)')

  if (restartEdge) {
    await edge.edge.stop()
    edge = await edgeOn(t, pub, inner, backends)
  }
  const call = await backendCall(t, b, inner)
  t.equal(call.successful, 1, `the backend's call through the Path reached the phone and ended with BYE (${call.dir})`)
  const ph = await phoneRun
  t.equal(ph.successful, 1, `the phone registered, re-registered and un-registered (${ph.dir})`)
  t.match(ph.logs.join('\n'), `phone-invite ruri=sip:alice@${PHONE}:5999`, 'the phone got the INVITE with its Contact as Request-URI, on its own flow, not on port 5999')
  t.match(ph.logs.join('\n'), 'phone-bye', "the backend's BYE reached the phone through the Record-Route")

  const seen = sipLinesOf(ph)
  t.match(seen, /^INVITE sip:alice/m, 'the trace holds the INVITE')
  t.notMatch(seen, INTERNAL, "no internal address of the edge toward the phone (Via, Record-Route, Path in the 200)")
  t.notMatch(seen, '127.0.1.', 'no backend address toward the phone (Via, Contact, X-Internal scrubbed)')

  const other = regs.find((r) => r !== b.registrar)!
  const chosen = await b.registrar.stop(1000)
  const idle = await other.stop(500)
  t.equal(chosen.successful, 1, 'REGISTER, re-REGISTER and Expires: 0 all reached the registrar that holds the binding')
  t.equal((idle.counters.IncomingCall ?? 0) + (idle.counters.SuccessfulCall ?? 0), 0, 'the other registrar saw none of them')
  t.match(logsOf(b.registrar), /re-registered path=<sip:127\.0\.0\.2/, 'the re-REGISTER carries a fresh Path entry too')
}

t.test('a NATed UDP phone registers through the edge and receives a call a backend routes by Path', (t) => phoneGetsCall(t, 'udp', false))
t.test('a TCP phone receives the call on its own connection', (t) => phoneGetsCall(t, 'tcp', false))
t.test('the edge restarts between REGISTER and the call: the UDP flow is in the token alone', (t) => phoneGetsCall(t, 'udp', true))
