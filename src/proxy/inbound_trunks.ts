// Inbound trunks (config `inboundTrunks`): public sources (carriers, an upstream proxy) whose new requests are
// dispatched to a backend set whatever host their Request-URI names. Carriers send `INVITE sip:+1555...@pbx.
// example.com`, and an upstream proxy keeps the Request-URI it received. Everyone else still gets 403 for a
// foreign host (no open relay), and a trunk only ever reaches the backend set, never another external host.
// Prepared once per config: one BlockList check per new public request while trunks are configured.
import type { BlockList } from 'node:net'
import { cidrList, inList } from './addressing.js'

export interface InboundTrunkSpec {
  /** The backend set its requests go to; the default set when absent. */
  set: string | undefined
  cidr: string
}

export class InboundTrunks {
  private readonly any: BlockList
  /** Every entry in config order (first match wins; '' = the default set); empty when no entry names a set. */
  private readonly ordered: Array<{ list: BlockList; set: string }>

  constructor(specs: readonly InboundTrunkSpec[]) {
    this.any = cidrList(specs.map((s) => s.cidr))
    this.ordered = specs.some((s) => s.set !== undefined) ? specs.map((s) => ({ list: cidrList([s.cidr]), set: s.set ?? '' })) : []
  }

  get size(): number {
    return this.any.rules.length
  }

  /**
   * Whether `address` is an inbound trunk: undefined when not, '' for a trunk without a set of its own (the
   * default set), else its set. With overlapping entries, the first one in the config decides.
   */
  match(address: string): string | undefined {
    if (!inList(this.any, address)) return undefined
    for (const e of this.ordered) if (inList(e.list, address)) return e.set
    return ''
  }
}
