/**
 * The zod schema of one config layer (YAML file, environment, flags, library options), built from the key
 * table: every key optional (a layer may set any subset), strict objects (unknown keys are problems, with a
 * did-you-mean), null unsets the keys that may be absent. Zod's issues become problems that name the key.
 */
import { z } from 'zod'
import { show, unknownKeyProblem } from './fields.js'
import { CONFIG, sectionDefaults, type Entry, type Shape } from './keys.js'

export interface Problem {
  /** `probe.intervalMs`, `listen[1]`, `setAlgorithms.voice`, `(top level)`. */
  path: string
  problem: string
}

export type Layer = Record<string, unknown>

function objectSchema(shape: Shape): z.ZodType<Layer> {
  const props: Record<string, z.ZodType> = {}
  for (const [name, e] of Object.entries(shape)) props[name] = entrySchema(e)
  return z.strictObject(props, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? undefined : iss.input === null ? 'must not be null' : `${show(iss.input)} must be a mapping`),
  }) as unknown as z.ZodType<Layer>
}

function entrySchema(e: Entry): z.ZodType {
  const base = e.type === 'key' ? (e.field.schema as z.ZodType) : objectSchema(e.keys as Shape)
  return e.optional ? base.nullable().optional() : base.optional()
}

const LAYER = objectSchema(CONFIG)

/** Checks one layer; returns its cleaned values and the problems (each naming its key). */
export function checkLayer(raw: unknown, out: Problem[]): Layer {
  if (raw === undefined || raw === null) return {}
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    out.push({ path: '(top level)', problem: 'must be a mapping of keys to values' })
    return {}
  }
  const r = LAYER.safeParse(raw)
  if (r.success) return r.data
  for (const iss of r.error.issues) {
    if (iss.code === 'unrecognized_keys') {
      const known = Object.keys(shapeAt(iss.path))
      for (const k of iss.keys) out.push({ path: pathText([...iss.path, k]), problem: unknownKeyProblem(k, known) })
    } else out.push({ path: pathText(iss.path), problem: iss.message })
  }
  return {}
}

/** `['probe', 'intervalMs']` -> `probe.intervalMs`; `['listen', 1]` -> `listen[1]`. */
function pathText(path: readonly PropertyKey[]): string {
  let s = ''
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`
  return s === '' ? '(top level)' : s
}

function shapeAt(path: readonly PropertyKey[]): Shape {
  let shape: Shape = CONFIG
  for (const p of path) {
    const e = shape[String(p)]
    if (e?.type !== 'section') break
    shape = e.keys as Shape
  }
  return shape
}

/**
 * Applies a checked layer over a config: sections merge key by key (nested ones too: `media.ping`), maps
 * merge by name, lists and scalars replace, null unsets.
 */
export function applyLayer(base: Layer, layer: Layer, shape: Shape = CONFIG): void {
  for (const [k, v] of Object.entries(layer)) {
    if (v === undefined) continue
    const e = shape[k]
    if (v === null) delete base[k]
    else if (e?.type === 'section') {
      const into: Layer = { ...(shape === CONFIG ? sectionDefaults(k) : {}), ...(base[k] as Layer | undefined) }
      applyLayer(into, v as Layer, e.keys as Shape)
      base[k] = into
    } else if (e?.type === 'key' && e.field.kind === 'map') base[k] = { ...(base[k] as object | undefined), ...(v as object) }
    else base[k] = v
  }
}
