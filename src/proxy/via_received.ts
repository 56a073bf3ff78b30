import type { MessageEditor, SipMessage } from '../sip/index.js'
import type { Peer } from '../transport/types.js'
import { bareHost } from './addressing.js'

const SEMI = 0x3b
const EQ = 0x3d
const DQUOTE = 0x22

/**
 * RFC 3261 §18.2.1 and RFC 3581 §4: the server that receives a request notes in the top Via where it really
 * came from: `received` when the sent-by host is not the source address (always when `rport` is asked for),
 * and the source port as the value of an empty `rport`. Whoever relays the responses later with nothing but
 * the Vias to go by (a 2xx retransmission relayed statelessly, another edge sharing the secret) then reaches
 * a client behind NAT, not the address it wrote in its Via. Nothing is edited (or allocated) for a client
 * whose Via is already right and asks for no rport.
 */
export function fillReceived(msg: SipMessage, ed: MessageEditor, source: Peer): void {
  const via = msg.via
  const rport = via.rport !== undefined
  if (!rport && via.received === undefined && bareHost(via.host) === source.address) return
  // A received/rport the element already carries is the client's own claim: drop it, then append ours.
  const buf = msg.buf
  const end = via.end
  let i = buf.indexOf(SEMI, via.start)
  while (i >= 0 && i < end) {
    const nameStart = i + 1
    let j = nameStart
    while (j < end && buf[j] !== EQ && buf[j] !== SEMI) j++
    const nameEnd = trimEnd(buf, nameStart, j)
    let next = j
    if (next < end && buf[next] === EQ) {
      next++
      while (next < end && buf[next] !== SEMI) {
        if (buf[next] === DQUOTE) next = closingQuote(buf, next + 1, end)
        next++
      }
    }
    if (isParam(buf, nameStart, nameEnd, 'rport') || isParam(buf, nameStart, nameEnd, 'received')) ed.replaceRange(i, Math.min(next, end), '')
    i = next < end ? next : -1
  }
  let add = ';received=' + source.address
  if (rport) add += ';rport=' + source.port
  ed.replaceRange(end, end, add)
}

function trimEnd(buf: Buffer, start: number, end: number): number {
  while (end > start && (buf[end - 1] === 0x20 || buf[end - 1] === 0x09)) end--
  return end
}

function closingQuote(buf: Buffer, from: number, end: number): number {
  for (let k = from; k < end; k++) {
    if (buf[k] === 0x5c) k++
    else if (buf[k] === DQUOTE) return k
  }
  return end - 1
}

/** Case-insensitive compare of buf[start, end) (leading blanks allowed) with a lower-case parameter name. */
function isParam(buf: Buffer, start: number, end: number, name: string): boolean {
  while (start < end && (buf[start] === 0x20 || buf[start] === 0x09)) start++
  if (end - start !== name.length) return false
  for (let k = 0; k < name.length; k++) if ((buf[start + k]! | 0x20) !== name.charCodeAt(k)) return false
  return true
}
