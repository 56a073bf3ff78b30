// The etcd sharing (shared.ts) is not re-exported: it loads the etcd client, which the edge imports only when configured.
export { Defence, DefenceStats, DEFENCE_DEFAULTS, PASS, DROP, REJECT, hasCredentials, targetUser, type DefenceOptions, type Verdict } from './defence.js'
export { BanTable, BAN_REASONS, DEFAULT_BAN_PREFIX, validAddress, type Ban, type BanReason } from './bans.js'
export { Fingerprints, PatternSet, DEFAULT_SCANNER_AGENTS, DEFAULT_SCANNER_FROM } from './fingerprint.js'
export { SlidingCounter } from './counters.js'
