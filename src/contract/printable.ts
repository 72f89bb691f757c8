/**
 * Text a client received (from the broker, a vault, an audit entry) made safe to show: every
 * character that is not printable becomes a visible escape, `\u001b`, `\u202e`. The rule lives
 * here once for every place that shows such text: the console page, its CSV export, the CLI and
 * the CI steps' logs.
 *
 * Not printable: C0 and C1 controls and DEL (`\p{Cc}`: ESC starts terminal sequences such as
 * OSC 52 clipboard writes, CR overwrites a line, U+009B is a one-byte CSI), Unicode format
 * characters (`\p{Cf}`: bidi overrides and isolates that reorder what a reader sees, zero-width
 * spaces that make two names look alike), line and paragraph separators and lone surrogates.
 *
 * NOTE: ZWJ and ZWNJ (U+200D, U+200C) are format characters that some scripts and emoji need to
 * render right, and they cannot reorder or hide text: they stay. A backslash is not escaped:
 * this is for display, not a reversible encoding (JSON output stays exact, see `printableJson`).
 *
 * This module is pure (no DOM, no Node): the console bundle and the clients both import it; it
 * lives in the contract because §5 makes "printable" part of it (the broker refuses control
 * characters in `reason`, src/contract/requests.ts).
 */

const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
const JOINERS = new Set(['\u200c', '\u200d']);

/** `\uXXXX` per UTF-16 unit: the same form in JSON, JavaScript and for people. */
function escape(character: string): string {
  if (JOINERS.has(character)) return character;
  let out = '';
  for (let i = 0; i < character.length; i += 1) {
    out += `\\u${character.charCodeAt(i).toString(16).padStart(4, '0')}`;
  }
  return out;
}

/** One value as printable text on one line: every non-printable character escaped, newlines too. */
export function printable(text: string): string {
  return text.replace(NON_PRINTABLE, escape);
}

/** Printable text that keeps its own line breaks (`\n`); everything else is escaped. */
export function printableLines(text: string): string {
  return text.split('\n').map(printable).join('\n');
}

/**
 * JSON of `value` that a terminal can show as is and a parser reads back unchanged:
 * JSON.stringify escapes C0 controls itself; DEL, C1 controls and format characters become
 * `\uXXXX` escapes, which JSON reads as the same characters.
 */
export function printableJson(value: unknown, indent = 2): string {
  // Its own line breaks (the indentation) stay; every other control is escaped.
  return printableLines(JSON.stringify(value, null, indent));
}
