/**
 * Fields of the `media.*` keys (rtpengine anchoring, src/media): rtpengine addresses, rtpengine interface
 * names, NG flags, and the per-set map (`media.sets.<set>`: mode, flags, extra NG keys). The rules across
 * media keys are in cross.ts; the edge turns the section into src/media's MediaConfig (toMediaConfig).
 */
import { isIP } from 'node:net'
import { z } from 'zod'
import type { BInput } from '../media/bencode.js'
import type { MediaMode } from '../media/config.js'
import { parseRtpengineSpec } from '../media/rtpengine_pool.js'
import { list, oneOf, str, type Check, type Field } from './fields.js'

export const MEDIA_MODES: readonly MediaMode[] = ['off', 'anchor']

/** One backend set's media settings as configured; an absent mode follows `media.mode`. */
export interface MediaSetLayer {
  mode?: MediaMode
  flags?: string[]
  extra?: Record<string, BInput>
}

export const rtpengineSpecs = list((s) => {
  try {
    parseRtpengineSpec(s)
    return undefined
  } catch (err) {
    return (err as Error).message
  }
})

const NAME = /^[A-Za-z0-9_.:-]*$/
/** An rtpengine interface name (`--interface=NAME/IP`); `allowEmpty` for "send no such key". */
export const ngName = (allowEmpty = false): Field<string> =>
  str({ ...(allowEmpty ? {} : { minLength: 1 }), check: (s) => (NAME.test(s) ? undefined : `"${s}" must be letters, digits, _ . : -`) })

/** NG flags: any text rtpengine knows, one line each. */
export const ngFlags = list((s) => (/[\r\n]/.test(s) ? `"${s}" must be one line` : undefined))

export const checkIp: Check = (s) => (isIP(s) === 0 ? `"${s}" is not an IP literal` : undefined)

/** NG keys the anchor sets itself: an `extra` map must not override them. */
const RESERVED = new Set(['command', 'call-id', 'from-tag', 'to-tag', 'via-branch', 'sdp', 'direction', 'flags'])

const bvalue: z.ZodType<BInput> = z.lazy(() =>
  z.union([z.string(), z.boolean(), z.int(), z.array(bvalue), z.record(z.string(), bvalue)], {
    error: (iss) => `${JSON.stringify(iss.input)} is not representable in bencode (strings, integers, booleans, lists, maps)`,
  }),
) as z.ZodType<BInput>

const extra = z.record(z.string(), bvalue, { error: () => 'must be a mapping of NG keys' }).superRefine((m, ctx) => {
  for (const k of Object.keys(m)) {
    if (RESERVED.has(k)) ctx.addIssue({ code: 'custom', path: [k], message: `is set by the edge itself${k === 'flags' ? ' (use the set\'s flags)' : ''}` })
  }
})

/** `media.sets`: `{ voice: { mode: anchor, flags: [...], extra: {...} } }`, or `voice: anchor` (the flag's SET=MODE). */
export function mediaSets(): Field<Record<string, MediaSetLayer>> {
  const set = z.preprocess(
    (v) => (typeof v === 'string' ? { mode: v } : v),
    z.strictObject({ mode: oneOf(MEDIA_MODES).schema.optional(), flags: ngFlags.schema.optional(), extra: extra.optional() }, {
      error: (iss) => (iss.code === 'unrecognized_keys' ? undefined : `${JSON.stringify(iss.input)} must be off, anchor or a mapping of mode, flags, extra`),
    }),
  )
  const schema = z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/), set, {
    error: (iss) => (iss.code === 'invalid_key' ? `"${String(iss.input)}" is not a valid set name` : 'must be a mapping of set: settings'),
  })
  return { schema: schema as unknown as z.ZodType<Record<string, MediaSetLayer>>, kind: 'map' }
}
