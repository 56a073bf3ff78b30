#!/usr/bin/env node
// Prints the configuration reference (Markdown table) from the code itself: FLAGS (flag, env, help) and
// the defaults the validator applies. README.md pastes this output; regenerate after changing config.ts:
//   npm run build && node scripts/config-table.mjs
import { FLAGS, validateConfig } from '../dist/edge/config.js'

// Optional sections take their defaults only when present: validate a config that has both, then read.
const { config, errors } = validateConfig(
  { secret: 'x'.repeat(16), etcd: { endpoints: ['http://127.0.0.1:2379'] }, hep: { address: 'udp:127.0.0.1:9060' } },
  'defaults',
)
if (!config) throw new Error(`cannot compute defaults: ${errors.join('; ')}`)

function valueAt(path) {
  let v = config
  for (const p of path.split('.')) v = v?.[p]
  return v
}

function defaultOf(spec) {
  if (spec.key === 'secret') return 'random per start'
  if (spec.key === 'etcd.endpoints') return 'off'
  if (spec.key === 'hep.address') return 'off'
  if (spec.key.startsWith('etcd.') || spec.key.startsWith('hep.')) {
    const v = valueAt(spec.key)
    return v === undefined ? '' : `\`${v}\``
  }
  const v = valueAt(spec.key)
  if (v === undefined || v === '') return ''
  if (Array.isArray(v)) return v.length ? `\`${v.join(',')}\`` : ''
  if (typeof v === 'object') return Object.keys(v).length ? `\`${JSON.stringify(v)}\`` : ''
  return `\`${v}\``
}

const cell = (s) => String(s).replace(/\|/g, '\\|')
const rows = [
  '| YAML key | flag | environment | default | meaning |',
  '|---|---|---|---|---|',
  '| (file) | `--config FILE` | `SIPEDGE_CONFIG` | | YAML config file |',
]
for (const f of FLAGS) {
  const flag = f.type === 'boolean' ? `--[no-]${f.flag}` : `--${f.flag} ${f.arg ?? 'VALUE'}`
  const meaning = `${f.help}${f.multiple ? ' (repeatable, or comma list)' : ''}`
  rows.push(`| \`${f.key}\` | \`${cell(flag)}\` | \`${f.env}\` | ${cell(defaultOf(f))} | ${cell(meaning)} |`)
}
process.stdout.write(rows.join('\n') + '\n')
