import type { FirewallWrite } from '../ports/target-firewall';

/**
 * What a whole-list write changed, for the audit trail: `read` and `written`
 * in the kind's notation, compared as written (a kind keeps one notation per
 * rule, so equal rules are equal strings).
 */
export function wholeListWrite(read: string[], written: string[]): FirewallWrite {
  const before = new Set(read);
  const after = new Set(written);
  return {
    read,
    written,
    added: written.filter((rule) => !before.has(rule)),
    removed: read.filter((rule) => !after.has(rule)),
  };
}
