#!/usr/bin/env node
// Prints the configuration reference (Markdown table) from the key table itself (src/config/keys.ts): flag,
// environment variable, default, help, and whether SIGHUP applies it. README.md pastes this output and
// test/examples/readme.test.ts checks it is the current one:
//   npm run build && node scripts/config-table.mjs
import { DEFAULT_CONFIG, FLAGS } from '../dist/config/index.js'
import { sectionDefaults } from '../dist/config/keys.js'

function defaultOf(spec) {
  if (spec.docDefault) return spec.docDefault
  const [top, ...rest] = spec.key.split('.')
  let v = rest.length === 0 ? DEFAULT_CONFIG[top] : (DEFAULT_CONFIG[top] ?? sectionDefaults(top))
  for (const p of rest) v = v?.[p]
  if (v === undefined || v === '') return ''
  if (Array.isArray(v)) return v.length ? `\`${v.join(',')}\`` : ''
  if (typeof v === 'object') return Object.keys(v).length ? `\`${JSON.stringify(v)}\`` : ''
  return `\`${v}\``
}

const cell = (s) => String(s).replace(/\|/g, '\\|')
const rows = [
  '| YAML key | flag | environment | default | SIGHUP | meaning |',
  '|---|---|---|---|---|---|',
  '| (file) | `--config FILE` | `SIPEDGE_CONFIG` | | restart | YAML config file (re-read on SIGHUP) |',
]
for (const f of FLAGS) {
  const flag = f.type === 'boolean' ? `--[no-]${f.flag}` : `--${f.flag} ${f.arg ?? 'VALUE'}`
  const meaning = `${f.help}${f.multiple ? ' (repeatable, or comma list)' : ''}`
  rows.push(`| \`${f.key}\` | \`${cell(flag)}\` | \`${f.env}\` | ${cell(defaultOf(f))} | ${f.restart ? 'restart' : 'live'} | ${cell(meaning)} |`)
}
process.stdout.write(rows.join('\n') + '\n')
