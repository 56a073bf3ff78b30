// Real scanners against the edge with its default defence, in front of SIPp backends: svcrack guessing
// passwords against a registrar that answers 401 then 403, svwar enumerating extensions against one that
// answers 404, svmap sweeping with its scanner User-Agent. Meanwhile legitimate SIPp calls come from
// another address. Each attacker is banned after its threshold and gets nothing afterwards; every
// legitimate call completes.
import t from 'tap'
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startEdge } from '../helpers/edge.js'
import { spawnTracked, type TrackedChild } from '../helpers/proc.js'
import { describe, runUac, sippAvailable, startUas } from '../helpers/sipp.js'
import { DIR_IN, SIDE_PUBLIC, methodIndex } from '../../src/edge/stats.js'

if (!sippAvailable()) t.fail('sipp is not installed (apt-get install sip-tester)')
if (spawnSync('svmap', ['--version'], { stdio: 'ignore', timeout: 5000 }).error !== undefined) t.fail('sipvicious is not installed (apt-get install sipvicious)')

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
// svcrack and svwar 0.3.3 ignore -b (their constructors are not given the binding address): they send from
// the kernel's choice, 127.0.0.1 here. Each runs against its own edge so that the two bans stay apart.
const TOOL_SOURCE = '127.0.0.1'
const MAP = '127.0.21.26'
const LEGIT_CALLS = 300

async function setup(t: Test, net: number) {
  const ip = (n: number) => `127.0.${net}.${n}`
  const calls = await startUas({ scenario: 'uas', ip: ip(12), traceMsg: false, t })
  const registrar = await startUas({ scenario: fixture('uas_register_401_403.xml'), ip: ip(13), traceMsg: false, t })
  const extensions = await startUas({ scenario: fixture('uas_invite_404.xml'), ip: ip(14), traceMsg: false, t })
  // Port 5060: sipvicious writes Request-URIs without a port, and the edge refuses (403) to relay requests
  // that are not addressed to it.
  const te = await startEdge(t, ip(10), {
    backends: [`sip:${calls.id}`, `set=registrar:sip:${registrar.id}`, `set=extensions:sip:${extensions.id}`],
    hooks: {
      onRequest: (ctx) => {
        if (ctx.msg.getHeader('Subject') === 'sipedge uac') return
        ctx.set = ctx.msg.method === 'REGISTER' ? 'registrar' : 'extensions'
      },
    },
  }, 5060)
  const { edge } = te
  // Every datagram the edge sends, by destination address, with its time.
  const sentTo = new Map<string, number[]>()
  const send = edge.transports.send.bind(edge.transports)
  edge.transports.send = (buf, dest, via, connId) => {
    let list = sentTo.get(dest.address)
    if (!list) sentTo.set(dest.address, (list = []))
    list.push(Date.now())
    send(buf, dest, via, connId)
  }
  const load = runUac({ scenario: 'uac', target: te.target, localIp: ip(11), calls: LEGIT_CALLS, rate: 20, traceMsg: false, timeoutS: 90, t })
  const sent = (addr: string) => sentTo.get(addr) ?? []
  const lateSends = (addr: string, since: number) => sent(addr).filter((ts) => ts > since + 500).length
  return { ...te, defence: edge.defence!, load, sent, lateSends, legit: ip(11) }
}

const out = (p: TrackedChild) => p.output().stdout + p.output().stderr

async function finish(t: Test, s: Awaited<ReturnType<typeof setup>>) {
  const result = await s.load
  t.ok(result.successful >= LEGIT_CALLS * 0.999, `legitimate calls completed: ${result.successful}/${LEGIT_CALLS} (${describe(result)})`)
  t.equal(s.defence.banOf(s.legit), undefined, 'the legitimate caller is never banned')
  return result
}

t.test('svcrack is banned after the threshold and gets nothing more; svmap gets no answer at all', async (t) => {
  const s = await setup(t, 21)
  t.ok(s.defence, 'the defence is on by default')
  await new Promise((r) => setTimeout(r, 1000))
  // -c (compact headers) sends no User-Agent: svcrack then passes the fingerprint rules and meets the
  // counters; svmap keeps its "friendly-scanner" User-Agent.
  const svcrack = spawnTracked('svcrack', ['-c', '-p', String(s.port), '-u', '100', '-r', '1000-9999', '--maximumtime', '3', s.host], { t })
  const svmap = spawnTracked('svmap', ['-b', MAP, '-p', String(s.port), s.host], { t })
  const killer = setTimeout(() => [svcrack, svmap].forEach((p) => p.kill('SIGKILL')), 60_000)
  await Promise.all([svcrack.exited, svmap.exited])
  clearTimeout(killer)

  const ban = s.defence.banOf(TOOL_SOURCE)
  t.ok(ban, `svcrack banned (${out(svcrack).slice(-400)})`)
  t.match(ban?.reason, /^(auth-failures|challenges)$/)
  t.notMatch(out(svcrack), /The password for/, 'no password found')
  if (ban) t.equal(s.lateSends(TOOL_SOURCE, ban.since), 0, 'svcrack: nothing sent more than 500 ms after the ban')
  t.match(out(svcrack), /since we last received a response - stopping/, 'svcrack gave up for lack of answers')

  t.equal(s.sent(MAP).length, 0, 'svmap got no response at all')
  t.equal(s.defence.banOf(MAP)?.reason, 'scanner')
  t.notMatch(out(svmap), new RegExp(`${s.host.replace(/\./g, '\\.')}:${s.port}`), 'svmap lists no SIP device')

  const result = await finish(t, s)
  const st = s.defence.stats
  const registers = s.edge.stats.requests(SIDE_PUBLIC, DIR_IN, methodIndex('REGISTER'))
  t.comment(JSON.stringify({
    svcrack: { reason: ban?.reason, challenges: st.challenges, failedRetries: st.authFailures, registersAdmitted: registers, repliesSent: s.sent(TOOL_SOURCE).length, droppedWhileBanned: st.droppedBanned },
    svmap: { dropped: st.droppedScanner },
    legit: `${result.successful}/${LEGIT_CALLS}`,
  }))
  // Attempts before the ban: the thresholds (5 failed retries, 30 challenges) plus what was in flight.
  t.ok(st.authFailures <= 5 + 3, `failed password retries relayed: ${st.authFailures}`)
  t.ok(st.challenges <= 30 + 5, `challenges relayed: ${st.challenges}`)
  t.ok(st.droppedBanned > 0, `svcrack requests dropped after the ban: ${st.droppedBanned}`)

  const text = await s.edge.metrics.metrics()
  t.match(text, /sipedge_bans_active [1-9]/)
  t.match(text, /sipedge_defence_dropped_total\{reason="banned"\} [1-9]/)
  t.match(text, /sipedge_bans_total\{reason="scanner"\} 1/)
  t.match(text, /sipedge_auth_failures_total\{kind="failed-retry"\} [1-9]/)
})

t.test('svwar enumeration is cut off after the not-found threshold', async (t) => {
  const s = await setup(t, 22)
  await new Promise((r) => setTimeout(r, 1000))
  const svwar = spawnTracked('svwar', ['-c', '-p', String(s.port), '-m', 'INVITE', '-e', '100-999', '--maximumtime', '3', s.host], { t })
  const killer = setTimeout(() => svwar.kill('SIGKILL'), 60_000)
  await svwar.exited
  clearTimeout(killer)

  const ban = s.defence.banOf(TOOL_SOURCE)
  t.equal(ban?.reason, 'not-found', `svwar banned (${out(svwar).slice(-400)})`)
  if (ban) t.equal(s.lateSends(TOOL_SOURCE, ban.since), 0, 'svwar: nothing sent more than 500 ms after the ban')
  const result = await finish(t, s)
  const invites = s.edge.stats.requests(SIDE_PUBLIC, DIR_IN, methodIndex('INVITE')) - (result.successful + result.failed)
  const st = s.defence.stats
  t.comment(JSON.stringify({ svwar: { notFound: st.notFound, invitesAdmitted: invites, repliesSent: s.sent(TOOL_SOURCE).length, droppedWhileBanned: st.droppedBanned }, legit: `${result.successful}/${LEGIT_CALLS}` }))
  t.ok(invites <= 20 + 10, `svwar INVITEs admitted: ${invites} of 900 extensions`)
  t.ok(st.droppedBanned > 0, 'the rest were dropped')
})
