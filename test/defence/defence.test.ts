// The defence's decisions on a stepped clock: thresholds per window, reset on a successful authentication,
// per-user guessing, not-found floods, fingerprints, allow-list, LRU bounds, and hostile credentials.
import t from 'tap'
import { pino } from 'pino'
import { parseMessage } from '../../src/sip/index.js'
import { DROP, Defence, PASS, REJECT, SlidingCounter, targetUser, type DefenceOptions } from '../../src/defence/index.js'

function request(opts: { method?: string; user?: string; ua?: string; from?: string; auth?: string; proxyAuth?: boolean; extra?: string } = {}) {
  const method = opts.method ?? 'REGISTER'
  const user = opts.user ?? '100'
  const text =
    `${method} sip:${method === 'REGISTER' ? '' : user + '@'}127.0.0.1 SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP 127.0.9.1:5060;branch=z9hG4bK-${Math.random().toString(36).slice(2)};rport\r\n` +
    `From: ${opts.from ?? `"${user}" <sip:${user}@127.0.0.1>`};tag=1\r\n` +
    `To: "${user}" <sip:${user}@127.0.0.1>\r\n` +
    `Call-ID: ${Math.random().toString(36).slice(2)}\r\nCSeq: 1 ${method}\r\nMax-Forwards: 70\r\n` +
    (opts.ua !== undefined ? `User-Agent: ${opts.ua}\r\n` : '') +
    (opts.auth !== undefined ? `${opts.proxyAuth ? 'Proxy-Authorization' : 'Authorization'}: ${opts.auth}\r\n` : '') +
    (opts.extra ?? '') +
    'Content-Length: 0\r\n\r\n'
  return parseMessage(Buffer.from(text, 'latin1'))
}

const digest = (user: string) => `Digest username="${user}",realm="asterisk",nonce="abc",uri="sip:127.0.0.1",response="0123456789abcdef0123456789abcdef",algorithm=MD5`

function setup(opts: DefenceOptions = {}) {
  let now = 1_000_000
  const lines: Array<Record<string, unknown>> = []
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) })
  const d = new Defence({ now: () => now, log, ...opts })
  return { d, lines, step: (ms: number) => (now += ms), bansLogged: () => lines.filter((l) => l.msg === 'source banned') }
}

t.test('sliding counter: counts within the window, weights the previous one, forgets after two', async (t) => {
  const c = new SlidingCounter()
  for (let i = 0; i < 5; i++) c.hit(1000 + i, 1000)
  t.equal(c.value(1500, 1000), 5)
  t.equal(c.value(2500, 1000), 2.5, 'half of the previous window still overlaps')
  t.equal(c.value(5000, 1000), 0)
  t.equal(c.hit(4000, 1000), 1, 'a clock step back starts over')
})

t.test('failed retries: banned at the threshold, not before; dropped afterwards; one log line', async (t) => {
  const { d, bansLogged } = setup({ failures: 5 })
  const src = '127.0.9.1'
  for (let i = 0; i < 4; i++) {
    d.observe(request(), src, 401) // the challenge
    d.observe(request({ auth: digest('100') }), src, 403) // the failed retry
  }
  t.equal(d.screen(request(), src), PASS, '4 failures: not banned')
  d.observe(request({ auth: digest('100') }), src, 401)
  t.equal(d.screen(request(), src), DROP, '5th failure: banned')
  t.equal(d.banOf(src)?.reason, 'auth-failures')
  for (let i = 0; i < 100; i++) t.equal(d.screen(request(), src), DROP)
  d.observe(request({ auth: digest('100') }), src, 403) // late answers to requests admitted before the ban
  t.equal(bansLogged().length, 1, 'one log line per ban, not per packet')
  t.equal(d.stats.droppedBanned, 101)
  t.equal(d.stats.authFailures, 6)
  t.equal(d.stats.bans['auth-failures'], 1)
})

t.test('failures spread over more than the window do not ban', async (t) => {
  const { d, step } = setup({ failures: 5, windowS: 60 })
  for (let i = 0; i < 20; i++) {
    d.observe(request({ auth: digest('100') }), '127.0.9.2', 403)
    step(40_000)
  }
  t.equal(d.screen(request(), '127.0.9.2'), PASS)
  t.equal(d.activeBans, 0)
})

t.test('a successful authentication resets the source', async (t) => {
  const { d } = setup({ failures: 3, challenges: 4 })
  const src = '127.0.9.3'
  for (let round = 0; round < 10; round++) {
    d.observe(request(), src, 401)
    d.observe(request({ auth: digest('100') }), src, 401) // a wrong password, once
    d.observe(request({ auth: digest('100') }), src, 401)
    d.observe(request({ auth: digest('100'), method: 'INVITE' }), src, 180) // then it gets through
  }
  t.equal(d.screen(request(), src), PASS, 'never 3 failures or 4 challenges between successes')
  // 100 Trying and answers to requests without credentials reset nothing.
  d.observe(request(), src, 401)
  d.observe(request({ auth: digest('100') }), src, 401)
  d.observe(request({ auth: digest('100') }), src, 100)
  d.observe(request({ auth: digest('100') }), src, 403)
  d.observe(request(), src, 200)
  d.observe(request({ auth: digest('100'), proxyAuth: true }), src, 407)
  t.equal(d.screen(request(), src), DROP, 'third failure bans: 100 and unauthenticated 200 did not reset')
})

t.test('challenges without success and not-found floods ban', async (t) => {
  const { d } = setup({ challenges: 10, notFound: 8 })
  for (let i = 0; i < 9; i++) d.observe(request(), '127.0.9.4', 407)
  t.equal(d.screen(request(), '127.0.9.4'), PASS)
  d.observe(request(), '127.0.9.4', 401)
  t.equal(d.banOf('127.0.9.4')?.reason, 'challenges')

  for (let i = 0; i < 7; i++) d.observe(request({ method: 'INVITE', user: String(200 + i) }), '127.0.9.5', i % 2 ? 404 : 403)
  t.equal(d.screen(request(), '127.0.9.5'), PASS, '7 not-found answers (404, 403 without credentials)')
  d.observe(request({ method: 'INVITE', user: '300' }), '127.0.9.5', 604)
  t.equal(d.banOf('127.0.9.5')?.reason, 'not-found')
  t.equal(d.stats.notFound, 8)
})

t.test('distributed guessing against one user: past the user threshold each failing source is banned at once', async (t) => {
  const { d, lines } = setup({ failures: 5, userFailures: 6 })
  for (let i = 0; i < 5; i++) d.observe(request({ auth: digest('1001') }), `127.0.10.${i + 1}`, 403)
  t.equal(d.activeBans, 0, 'five sources, one failure each')
  d.observe(request({ auth: digest('1001') }), '127.0.10.6', 403)
  t.equal(d.banOf('127.0.10.6')?.reason, 'user-attack')
  d.observe(request({ auth: digest('1001') }), '127.0.10.7', 401)
  t.equal(d.banOf('127.0.10.7')?.reason, 'user-attack')
  t.equal(d.banOf('127.0.10.1'), undefined, 'earlier sources stay until they fail again')
  d.observe(request({ auth: digest('2002') }), '127.0.10.8', 403)
  t.equal(d.banOf('127.0.10.8'), undefined, 'another user is not under attack')
  t.equal(lines.filter((l) => String(l.msg).startsWith('user under password guessing')).length, 1, 'logged once per window')
})

t.test('scanner fingerprints: default agents and From, dropped and banned; custom rules; none', async (t) => {
  const { d } = setup()
  for (const ua of ['friendly-scanner', 'SIPVicious 0.2', 'sipcli/v1.8', 'VaxSIPUserAgent/3.1', 'PPLSIP', 'sundayddr']) {
    const src = `127.0.11.${ua.length}`
    t.equal(d.screen(request({ ua }), src), DROP, ua)
    t.equal(d.banOf(src)?.reason, 'scanner', `${ua}: banned`)
  }
  t.equal(d.screen(request({ method: 'OPTIONS', from: '"sipvicious"<sip:100@1.1.1.1>' }), '127.0.11.50'), DROP, 'svmap From')
  for (const ua of ['Asterisk PBX 20.5', 'Linphone/5.2', 'SIPp/3.6', 'Yealink SIP-T46S', 'friendly', 'scanner', '']) {
    t.equal(d.screen(request({ ua }), '127.0.11.100'), PASS, `legit UA "${ua}"`)
  }
  t.equal(d.screen(request(), '127.0.11.100'), PASS, 'no User-Agent')

  const custom = setup({ userAgents: ['EvilDialer'], fromPatterns: [], toPatterns: ['sip:666@'], scanner: 3 }).d
  t.equal(custom.screen(request({ ua: 'friendly-scanner' }), '127.0.11.1'), PASS, 'default list replaced')
  t.equal(custom.screen(request({ ua: 'my evildialer 2' }), '127.0.11.1'), DROP)
  t.equal(custom.banOf('127.0.11.1'), undefined, 'scanner: 3 hits before a ban')
  t.equal(custom.screen(request({ user: '666', method: 'INVITE' }), '127.0.11.1'), DROP, 'To rule')
  t.equal(custom.screen(request({ ua: 'EVILDIALER' }), '127.0.11.1'), DROP)
  t.equal(custom.banOf('127.0.11.1')?.reason, 'scanner')

  // In-dialog requests (To tag) and ACKs belong to calls already admitted: not fingerprinted (cheaper hot path).
  t.equal(d.screen(request({ ua: 'friendly-scanner', method: 'BYE', extra: '' }), '127.0.11.100'), DROP, 'out of dialog: dropped')
  const inDialog = parseMessage(Buffer.from('BYE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.11.101;branch=z9hG4bK9\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:100@127.0.0.1>;tag=2\r\nCall-ID: x\r\nCSeq: 2 BYE\r\nUser-Agent: friendly-scanner\r\n\r\n'))
  t.equal(d.screen(inDialog, '127.0.11.101'), PASS, 'in dialog: not fingerprinted')
  t.equal(d.banOf('127.0.11.101'), undefined)

  const off = setup({ userAgents: [], fromPatterns: [] }).d
  t.equal(off.screen(request({ ua: 'friendly-scanner', from: '"sipvicious"<sip:1@1.1.1.1>' }), '127.0.11.1'), PASS)
})

t.test('allow-listed sources are never counted, fingerprinted or banned', async (t) => {
  const { d } = setup({ failures: 1, notFound: 1, challenges: 1, allow: ['127.0.12.0/24', '::1'] })
  for (let i = 0; i < 50; i++) {
    d.observe(request({ auth: digest('100') }), '127.0.12.7', 403)
    d.observe(request(), '127.0.12.7', 404)
    d.observe(request(), '::1', 401)
  }
  t.equal(d.screen(request({ ua: 'friendly-scanner' }), '127.0.12.7'), PASS)
  t.equal(d.activeBans, 0)
  t.equal(d.tracked.sources, 0)
  t.equal(d.banAddress('127.0.12.8'), 'address is allow-listed')
  t.equal(d.applyShared('127.0.12.9', Date.now() + 60_000, 'shared'), false, 'a shared ban is not applied either')
  t.equal(d.screen(request(), '127.0.12.9'), PASS)
  d.observe(request(), '127.0.13.1', 404)
  t.equal(d.banOf('127.0.13.1')?.reason, 'not-found', 'outside the list: banned')
})

t.test('ban TTL: expires by itself; admin ban and lift; reject action answers 403', async (t) => {
  const { d, step } = setup({ banS: 30, failures: 1, action: 'reject' })
  d.observe(request({ auth: digest('100') }), '127.0.14.1', 403)
  t.equal(d.screen(request(), '127.0.14.1'), REJECT)
  t.equal(d.stats.rejected, 1)
  step(29_000)
  t.equal(d.screen(request(), '127.0.14.1'), REJECT)
  step(2_000)
  t.equal(d.screen(request(), '127.0.14.1'), PASS, 'expired after banS')
  t.equal(d.activeBans, 0)

  const lifted: string[] = []
  d.onLift = (a) => lifted.push(a)
  const ban = d.banAddress('127.0.14.2', 5)
  t.equal(typeof ban === 'object' && ban.until - ban.since, 5000)
  t.equal(d.banAddress('not-an-ip'), 'not an IP address')
  t.equal(d.banAddress('127.0.14.3', 0), 'duration must be at least 1 s')
  t.equal(d.list().length, 1)
  t.equal(d.lift('127.0.14.2'), true)
  t.equal(d.lift('127.0.14.2'), false)
  t.same(lifted, ['127.0.14.2', '127.0.14.2'])
  t.equal(d.screen(request(), '127.0.14.2'), PASS)
})

t.test('bounded: a flood of distinct sources keeps the ban and counter tables at their limits', async (t) => {
  const { d } = setup({ maxBans: 1000, maxTracked: 500, notFound: 2 })
  const heapBefore = process.memoryUsage().heapUsed
  const msg = request()
  for (let i = 0; i < 60_000; i++) {
    const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
    d.observe(msg, src, 404)
    d.observe(msg, src, 404)
  }
  t.equal(d.activeBans, 1000, 'ban table at its bound')
  t.ok(d.tracked.sources <= 500, `counters bounded (${d.tracked.sources})`)
  t.ok(d.stats.bans['not-found'] >= 60_000 - 1, 'every source was banned when it crossed the threshold')
  // The most recent bans are kept (the oldest were evicted first).
  t.equal(d.screen(msg, '10.0.234.95'), DROP)
  t.equal(d.screen(msg, '10.0.0.1'), PASS)
  t.ok(process.memoryUsage().heapUsed - heapBefore < 50 * 1024 * 1024, 'heap growth bounded')
})

t.test('forged and huge credentials: never throw, bounded work', async (t) => {
  const { d } = setup({ failures: 2 })
  const nasty = [
    'Digest ' + 'a'.repeat(60_000),
    'Digest username="' + 'x'.repeat(10_000) + '"',
    'Digest username=",realm=',
    'Digest username="\u00ff\u00fe"',
    '"""""""',
    '',
    'Basic ' + Buffer.from('user:pass').toString('base64'),
    'Digest username="ok", ' + 'p=1,'.repeat(5000),
  ]
  for (const auth of nasty) {
    const msg = request({ auth, method: 'INVITE' })
    t.doesNotThrow(() => d.observe(msg, '127.0.15.1', 401))
    t.doesNotThrow(() => d.screen(msg, '127.0.15.2'))
    const u = targetUser(msg)
    t.ok(u.length <= 64, `user bounded (${u.length})`)
  }
  t.equal(targetUser(request({ auth: digest('alice') })), 'alice')
  t.equal(targetUser(request({ method: 'INVITE', user: 'bob' })), 'bob', 'R-URI user without credentials')
  t.equal(targetUser(request({ user: 'carol' })), 'carol', 'REGISTER: the To user')
  // A request whose To cannot be parsed still counts toward its source.
  const broken = parseMessage(Buffer.from('REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.15.3;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <<<\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nAuthorization: Digest nonsense\r\n\r\n'))
  t.equal(targetUser(broken), '')
  t.doesNotThrow(() => d.observe(broken, '127.0.15.3', 403))
  t.doesNotThrow(() => d.observe(broken, '127.0.15.3', 403))
  t.equal(d.banOf('127.0.15.3')?.reason, 'auth-failures')
  // A 1000-byte User-Agent with the marker past the scanned prefix is not searched to the end.
  t.equal(d.screen(request({ ua: 'x'.repeat(1000) + 'friendly-scanner' }), '127.0.15.4'), PASS)
  t.equal(d.screen(request({ ua: 'x'.repeat(100) + 'friendly-scanner' }), '127.0.15.4'), DROP)
})
