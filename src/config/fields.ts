/**
 * Field kinds of the config, as zod schemas with the edge's own messages (they name the value and say what
 * is wrong; the key and the source are added by the loader). A field validates one layer's value (YAML, env,
 * flags) and returns it cleaned: comma lists split, etcd endpoints normalised. `kind` says how a flag or an
 * environment variable of that field is converted from text.
 */
import { z } from 'zod'

export type FlagType = 'string' | 'int' | 'boolean' | 'list' | 'int-list' | 'map'

export interface Field<T> {
  readonly schema: z.ZodType<T>
  readonly kind: FlagType
}

export type Check = (s: string) => string | undefined

export const show = (v: unknown): string => (typeof v === 'string' ? `"${v}"` : (JSON.stringify(v) ?? String(v)))

/** "x must be a string", or "must not be null" (null means "unset" only where a key may be unset). */
const typeError = (what: string) => (iss: { input?: unknown }) => (iss.input === null ? 'must not be null' : `${show(iss.input)} ${what}`)

/** Runs a syntax check (from syntax.ts) as a refinement: its text is the message. */
function checked<T extends string>(schema: z.ZodType<T>, check: Check | undefined): z.ZodType<T> {
  if (!check) return schema
  return schema.superRefine((s, ctx) => {
    const problem = check(s)
    if (problem) ctx.addIssue({ code: 'custom', message: problem })
  })
}

export function str(o: { minLength?: number; check?: Check } = {}): Field<string> {
  let s = z.string({ error: typeError('must be a string') })
  if (o.minLength !== undefined) s = s.min(o.minLength, { error: () => `must be at least ${o.minLength} characters` })
  return { schema: checked(s, o.check), kind: 'string' }
}

export function int(min: number, max: number): Field<number> {
  const range = (iss: { input?: unknown }) => `${String(iss.input)} is out of range ${min}..${max}`
  return { schema: z.int({ error: typeError('must be an integer') }).min(min, { error: range }).max(max, { error: range }), kind: 'int' }
}

export function bool(): Field<boolean> {
  return { schema: z.boolean({ error: typeError('must be true or false') }), kind: 'boolean' }
}

export function oneOf<A extends string>(values: readonly A[]): Field<A> {
  const error = (iss: { input?: unknown }) =>
    iss.input === null ? 'must not be null' : `${show(iss.input)} must be one of ${values.join(', ')}${didYouMean(iss.input, values)}`
  return { schema: z.enum(values as [A, ...A[]], { error }) as unknown as z.ZodType<A>, kind: 'string' }
}

/**
 * A list of strings. A YAML scalar "a, b" is the comma list the flag and the environment take too. Each item
 * may be normalised (a value or an error text) and checked.
 */
export function list(check?: (s: string) => string | undefined, normalise?: (s: string) => { value: string } | string): Field<string[]> {
  const item = z.string({ error: typeError('must be a string') }).transform((s, ctx) => {
    let v = s
    if (normalise) {
      const n = normalise(s)
      if (typeof n === 'string') {
        ctx.addIssue({ code: 'custom', message: n })
        return z.NEVER
      }
      v = n.value
    }
    const problem = check?.(v)
    if (problem) {
      ctx.addIssue({ code: 'custom', message: problem })
      return z.NEVER
    }
    return v
  })
  const schema = z.preprocess((v) => (typeof v === 'string' ? splitList(v) : v), z.array(item, { error: typeError('must be a list') }))
  return { schema: schema as unknown as z.ZodType<string[]>, kind: 'list' }
}

export function intList(min: number, max: number): Field<number[]> {
  const asList = (v: unknown): unknown =>
    typeof v === 'string' ? splitList(v).map((x) => (/^\d+$/.test(x) ? Number(x) : x)) : typeof v === 'number' ? [v] : v
  const schema = z.preprocess(asList, z.array(int(min, max).schema, { error: typeError('must be a list of integers') }))
  return { schema: schema as unknown as z.ZodType<number[]>, kind: 'int-list' }
}

/** `name: value` pairs, e.g. setAlgorithms or logLevels. */
export function map<A extends string>(keyPattern: RegExp, values: readonly A[]): Field<Record<string, A>> {
  const schema = z.record(z.string().regex(keyPattern), oneOf(values).schema, {
    error: (iss) =>
      iss.code === 'invalid_key' ? `"${String(iss.input)}" is not a valid name` : typeError('must be a mapping of name: value')(iss),
  })
  return { schema: schema as unknown as z.ZodType<Record<string, A>>, kind: 'map' }
}

export function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

export function kebabToCamel(s: string): string {
  return s.replace(/[-_]([a-z])/g, (_, c: string) => c.toUpperCase())
}

export function unknownKeyProblem(key: string, known: readonly string[]): string {
  const camel = kebabToCamel(key)
  if (camel !== key && known.includes(camel)) return `unknown key (did you mean ${camel}? YAML keys are camelCase)`
  const near = nearest(key, known)
  return near ? `unknown key (did you mean ${near}?)` : 'unknown key'
}

/** The known word closest to `word` (case-insensitive edit distance, at most a third of its length). */
export function nearest(word: string, known: readonly string[]): string | undefined {
  const w = word.toLowerCase()
  let best: string | undefined
  let bestD = Math.max(1, Math.floor(w.length / 3)) + 1
  for (const k of known) {
    const d = editDistance(w, k.toLowerCase())
    if (d < bestD) {
      best = k
      bestD = d
    }
  }
  return best
}

export function didYouMean(value: unknown, known: readonly string[]): string {
  const near = typeof value === 'string' ? nearest(value, known) : undefined
  return near ? ` (did you mean ${near}?)` : ''
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[b.length]!
}
