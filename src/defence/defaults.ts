// Defaults of the defence, in a module without imports: the config layer (and `sipedge check-config`)
// reads them without loading the SIP stack.

export const DEFENCE_DEFAULTS = {
  action: 'drop' as 'drop' | 'reject',
  banS: 600,
  windowS: 60,
  challenges: 30,
  failures: 5,
  userFailures: 10,
  notFound: 20,
  scanner: 1,
  maxBans: 100_000,
  maxTracked: 100_000,
}

/**
 * User-Agents of common SIP scanners and brute-forcers: sipvicious 0.2/0.3 (`friendly-scanner` is its
 * default for svmap, svwar and svcrack), sipcli, SIPScan, sundayddr, iWar, SIVuS, VaxSIPUserAgent
 * (sold SDK abused by dialers), pplsip, smap, sip-scan, Gulp.
 */
export const DEFAULT_SCANNER_AGENTS: readonly string[] = [
  'friendly-scanner', 'sipvicious', 'sipcli', 'sip-scan', 'sipscan', 'sundayddr', 'iwar', 'sivus',
  'vaxsipuseragent', 'pplsip', 'smap', 'gulp/',
]

/** svmap names itself in the From display name ("sipvicious") even with a custom User-Agent. */
export const DEFAULT_SCANNER_FROM: readonly string[] = ['"sipvicious"']

/** etcd prefix of shared bans: `<prefix><ip>`. */
export const DEFAULT_BAN_PREFIX = '/sipedge/bans/'
