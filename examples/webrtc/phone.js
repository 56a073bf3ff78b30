// A minimal WebRTC softphone on SIP.js: registers over WSS, places and answers one call at a time.
// Query parameters prefill the form (?server=…&aor=…&target=…); `autoregister=1` registers at once.
// `window.phone` exposes the state for scripts (the repository's browser test drives the page with it).
import { Invitation, Inviter, Registerer, SessionState, UserAgent } from 'sip.js'

const $ = (id) => document.getElementById(id)
const params = new URLSearchParams(location.search)
for (const id of ['server', 'aor', 'target']) if (params.has(id)) $(id).value = params.get(id)

const phone = {
  registered: false,
  /** idle | ringing (incoming) | calling | in-call | ended */
  state: 'idle',
  log: [],
  ua: undefined,
  session: undefined,
  /** The call's RTCPeerConnection, when there is one. */
  get pc() { return phone.session?.sessionDescriptionHandler?.peerConnection },
}
window.phone = phone

function show(text, cls = '') {
  phone.log.push(text)
  $('status').textContent = text
  $('status').className = cls
}

function buttons() {
  const inCall = phone.session !== undefined
  $('call').disabled = !phone.registered || inCall
  $('answer').disabled = phone.state !== 'ringing'
  $('hangup').disabled = !inCall
}

// No STUN/TURN: the edge's rtpengine is reachable directly, and Chrome's default STUN server may not be.
const sdhOptions = { peerConnectionConfiguration: { iceServers: [] }, iceGatheringTimeout: 2000 }

function attach(session) {
  phone.session = session
  session.stateChange.addListener((s) => {
    if (s === SessionState.Established) {
      phone.state = 'in-call'
      show(`in call with ${session.remoteIdentity.uri}`, 'in-call')
      const stream = new MediaStream()
      for (const r of phone.pc.getReceivers()) if (r.track) stream.addTrack(r.track)
      $('remote').srcObject = stream
    } else if (s === SessionState.Terminated) {
      phone.state = 'ended'
      phone.session = undefined
      $('remote').srcObject = null
      show('call ended')
    }
    buttons()
  })
}

async function register() {
  if (phone.ua === undefined) {
    phone.ua = new UserAgent({
      uri: UserAgent.makeURI($('aor').value),
      transportOptions: { server: $('server').value },
      sessionDescriptionHandlerFactoryOptions: sdhOptions,
      delegate: {
        onInvite(invitation) {
          attach(invitation)
          phone.state = 'ringing'
          show(`incoming call from ${invitation.remoteIdentity.uri}`)
          buttons()
          if (params.get('autoanswer') === '1') void answer()
        },
      },
    })
    await phone.ua.start()
  }
  const registerer = new Registerer(phone.ua, { expires: 300 })
  registerer.stateChange.addListener((s) => {
    phone.registered = s === 'Registered'
    show(phone.registered ? `registered as ${$('aor').value}` : `registration: ${s}`)
    buttons()
  })
  await registerer.register({ requestDelegate: { onReject: (r) => show(`registration refused: ${r.message.statusCode}`) } })
}

async function call() {
  const target = UserAgent.makeURI($('target').value)
  if (target === undefined) return show('not a SIP URI')
  const inviter = new Inviter(phone.ua, target, { sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } } })
  attach(inviter)
  phone.state = 'calling'
  show(`calling ${target}`)
  buttons()
  await inviter.invite({ requestDelegate: { onReject: (r) => show(`call refused: ${r.message.statusCode} ${r.message.reasonPhrase}`) } })
}

async function answer() {
  const s = phone.session
  if (!(s instanceof Invitation)) return
  await s.accept({ sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } } })
}

async function hangup() {
  const s = phone.session
  if (s === undefined) return
  if (s instanceof Inviter && s.state !== SessionState.Established) await s.cancel()
  else if (s instanceof Invitation && s.state !== SessionState.Established) await s.reject()
  else await s.bye()
}

/** RTP packet counts of the call, from the browser's own statistics. */
phone.stats = async () => {
  const out = { sent: 0, received: 0 }
  if (phone.pc === undefined) return out
  for (const r of (await phone.pc.getStats()).values()) {
    if (r.type === 'outbound-rtp' && r.kind === 'audio') out.sent += r.packetsSent
    if (r.type === 'inbound-rtp' && r.kind === 'audio') out.received += r.packetsReceived
  }
  return out
}
Object.assign(phone, { register, call, answer, hangup })

setInterval(async () => {
  if (phone.state !== 'in-call') return
  const s = await phone.stats()
  $('stats').textContent = `ICE/DTLS: ${phone.pc?.connectionState}   RTP sent: ${s.sent}   received: ${s.received}`
}, 500)

const guard = (fn) => () => fn().catch((err) => show(`error: ${err.message}`))
$('register').onclick = guard(register)
$('call').onclick = guard(call)
$('answer').onclick = guard(answer)
$('hangup').onclick = guard(hangup)
buttons()
if (params.get('autoregister') === '1') void guard(register)()
