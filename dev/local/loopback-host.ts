import ipaddr from 'ipaddr.js';

/**
 * Whether a request's `Host` header names this machine's loopback: `localhost`
 * or a name under `.localhost` (RFC 6761: resolved to loopback by the
 * resolver and browsers themselves, never by DNS), an IPv4 address in
 * 127.0.0.0/8 (four-part decimal), or the IPv6 loopback in brackets; each
 * with or without `:port`.
 *
 * NOTE: the local runner listens on 127.0.0.1 only, but a web page can still
 * reach it: DNS rebinding points a name the page controls (`evil.example`)
 * at 127.0.0.1, and the browser then sends `Host: evil.example`. Answering
 * only loopback Host names is the defence; a browser cannot forge the header.
 */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(host.trim());
  if (!match) return false;
  const [, v6, name] = match;
  if (v6 !== undefined)
    return ipaddr.IPv6.isValid(v6) && ipaddr.IPv6.parse(v6).range() === 'loopback';
  const lower = (name ?? '').toLowerCase().replace(/\.$/, '');
  if (lower === 'localhost' || /^([a-z0-9-]+\.)+localhost$/.test(lower)) return true;
  return (
    ipaddr.IPv4.isValidFourPartDecimal(lower) && ipaddr.IPv4.parse(lower).range() === 'loopback'
  );
}
