import { H, type MessageEditor, type NameAddr, type SipMessage } from '../sip/index.js'

/**
 * The Route header of a forwarded request (RFC 3261 §16.4, §16.6 steps 6–7, §16.12).
 *
 * `popped`: the entries the edge consumes (its own ones on top, and the last one when a strict-routing
 * previous hop put the edge's URI in the Request-URI, §16.4). The rest of the route set stays, in order: an
 * in-dialog request goes on to the first entry left (a carrier that Record-Routes its SBC).
 *
 * `strictRuri`: set when that first entry left names a strict router (no `lr`), §16.6 step 6: "The proxy
 * MUST place the Request-URI into the Route header field as the last value. The proxy MUST then place the
 * first Route header field value into the Request-URI and remove that value from the Route header field."
 * It is the Request-URI the request would otherwise carry.
 */
export function rewriteRoutes(msg: SipMessage, ed: MessageEditor, popped: readonly NameAddr[], strictRuri: string | undefined): void {
  if (popped.length === 0 && strictRuri === undefined) return
  const routes = msg.routes
  if (popped.length >= routes.length) {
    ed.removeHeaders(H.Route) // the common case: the edge was the whole route set
    return
  }
  // Entries left: rebuilt as one Route line (splicing elements out of shared lines leaves stray commas).
  let value = ''
  let swapped = false
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!
    if (popped.includes(r)) continue
    if (strictRuri !== undefined && !swapped) {
      swapped = true
      ed.setRequestUri(r.uriText)
      continue
    }
    value += value === '' ? r.raw : ', ' + r.raw
  }
  if (strictRuri !== undefined) value += (value === '' ? '<' : ', <') + strictRuri + '>'
  const first = msg.indexOf(H.Route)
  ed.replaceRange(msg.headerValueStart(first), msg.headerValueEnd(first), value)
  for (let i = msg.indexOf(H.Route, first + 1); i >= 0; i = msg.indexOf(H.Route, i + 1)) {
    ed.replaceRange(msg.headerLineStart(i), msg.headerLineEnd(i), '')
  }
}

/** A Route URI without `lr` names a strict router (RFC 2543 style). */
export function isStrictRoute(route: NameAddr): boolean {
  return route.uri.params['lr'] === undefined
}
