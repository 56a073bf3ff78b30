/**
 * The configuration of the edge, one folder:
 *   keys.ts    the one description of every key (type, default, flag, env, help, reloadable) and what derives from it
 *   fields.ts  field kinds as zod schemas with the edge's messages; did-you-mean
 *   schema.ts  the schema of one layer, built from keys.ts; zod issues -> problems naming the key
 *   syntax.ts  address and URI syntaxes (listeners, backends, CIDRs, trunk, admin, HEP, etcd)
 *   sources.ts flags, environment, YAML file (with lines), --help
 *   cross.ts   rules across keys on the merged config
 *   load.ts    defaults < env < file < flags; validateConfig for library options; changedKeys
 */
export { ALGORITHMS, CONFIG, DEFAULT_CONFIG, FLAGS, LOG_LEVELS, RESTART_KEYS, type EdgeConfig, type EtcdConfig, type FlagSpec, type LogLevel } from './keys.js'
export { nearest, type FlagType } from './fields.js'
export { parseBackendSpec, parseCidr, parseHostPort, parseListenSpec } from './syntax.js'
export { COMMAND_FLAGS, flagsHelp, parseArgv, readYamlConfig, type ParsedArgs } from './sources.js'
export { changedKeys, loadConfig, validateConfig, validateMediaConfig, type LoadResult } from './load.js'
