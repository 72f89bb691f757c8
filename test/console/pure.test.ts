import { describe, expect, it } from 'vitest';

import { csvCell, toCsv } from '../../console/csv';
import {
  formatDuration,
  jwtClaims,
  rolesOf,
  safeHttpUrl,
  sameOriginPath,
} from '../../console/format';
import { consoleSettings } from '../../src/console/settings';
import { printable, printableJson, printableLines } from '../../src/contract/printable';

describe('The console CSV export', () => {
  it.each([
    ['=HYPERLINK("http://evil")', `"'=HYPERLINK(""http://evil"")"`],
    ['+1', `"'+1"`],
    ['-2+3', `"'-2+3"`],
    ['@SUM(A1)', `"'@SUM(A1)"`],
    ['\tx', '"\\u0009x"'],
    ['plain, "quoted"', '"plain, ""quoted"""'],
    ['line\nbreak', '"line\\u000abreak"'],
    ['\u001b]52;c;cHduZWQ=\u0007', '"\\u001b]52;c;cHduZWQ=\\u0007"'],
    ['\r=1+1', '"\\u000d=1+1"'],
    ['=1\u202e', `"'=1\\u202e"`],
    [undefined, '""'],
  ])('When a cell holds %j, then it is written as %s', (value, expected) => {
    expect(csvCell(value)).toBe(expected);
  });

  it('When rows are written, then columns follow the header, missing fields are empty and lines end with CRLF', () => {
    expect(toCsv(['a', 'b'], [{ a: '1' }, { a: 'x', b: '=1' }])).toBe(
      `"a","b"\r\n"1",""\r\n"x","'=1"\r\n`,
    );
  });
});

describe('Printable text (console, CSV, CLI)', () => {
  it.each([
    ['ESC[ (CSI)', 'a\u001b[2Jb', 'a\\u001b[2Jb'],
    ['OSC 52 clipboard write', '\u001b]52;c;cHduZWQ=\u0007', '\\u001b]52;c;cHduZWQ=\\u0007'],
    ['CR overwrite', 'ok\rFAIL', 'ok\\u000dFAIL'],
    ['a C1 control (CSI)', 'x\u009b31m', 'x\\u009b31m'],
    ['DEL', 'x\u007f', 'x\\u007f'],
    ['a bidi override', 'abc\u202etxt.exe', 'abc\\u202etxt.exe'],
    ['a bidi isolate', '\u2067x\u2069', '\\u2067x\\u2069'],
    ['a zero-width space', 'ad\u200bmin', 'ad\\u200bmin'],
    ['a line separator', 'a\u2028b', 'a\\u2028b'],
    ['a newline', 'a\nb', 'a\\u000ab'],
    ['a lone surrogate', 'a\ud800b', 'a\\ud800b'],
    ['plain text, accents, emoji with a joiner', 'Zoë 👩\u200d💻 ok', 'Zoë 👩\u200d💻 ok'],
  ])('When text holds %s, then it is shown as %j', (_what, text, shown) => {
    expect(printable(text)).toBe(shown);
  });

  it('When lines or JSON are made printable, then their own line breaks stay and JSON reads back the same value', () => {
    const value = { reason: 'a\u001b[2J\u009b\u202e\nb' };
    const json = printableJson(value);
    expect(printableLines('one\u001b\ntwo')).toBe('one\\u001b\ntwo');
    expect(json).toBe('{\n  "reason": "a\\u001b[2J\\u009b\\u202e\\nb"\n}');
    expect(JSON.parse(json)).toEqual(value);
  });
});

describe('The console formatting helpers', () => {
  it.each([
    [-5, '0s'],
    [999, '0s'],
    [12_000, '12s'],
    [245_000, '4m 05s'],
    [3_720_000, '1h 02m'],
    [90_000_000, '1d 01h'],
  ])('When %d ms are left, then the countdown says %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it.each([
    ['https://dev.azure.com/org/p/_build/results?buildId=1', true],
    ['http://ci.example/run/2', true],
    ['javascript:alert(1)', false],
    ['JaVaScRiPt:alert(1)', false],
    ['data:text/html,<b>x</b>', false],
    ['//evil.example/x', false],
    ['/api/leases', false],
    ['https://a.example/ x', false],
    ['<img src=x onerror=alert(1)>', false],
    ['https://ci.example/\u202e/exe.txt', false],
  ])('When a reason is %j, then it becomes a link: %s', (reason, link) => {
    expect(safeHttpUrl(reason) !== undefined).toBe(link);
  });

  it('When a token is read, then its roles come from the roles claim and garbage yields none', () => {
    const payload = Buffer.from(JSON.stringify({ roles: ['Lease.Read', 7], name: 'Ann' })).toString(
      'base64url',
    );
    expect([...rolesOf(jwtClaims(`x.${payload}.y`))]).toEqual(['Lease.Read']);
    expect(rolesOf(jwtClaims('not-a-token')).size).toBe(0);
    expect(rolesOf(jwtClaims('a.!!!.b')).size).toBe(0);
  });

  it('When a nextLink names another origin, then only its path and query are used', () => {
    expect(
      sameOriginPath('https://evil.example/api/audit?$skiptoken=x', 'http://127.0.0.1:7071'),
    ).toBe('/api/audit?$skiptoken=x');
  });
});

describe('The console sign-in settings', () => {
  const tenant = '11111111-2222-3333-4444-555555555555';
  const client = '7a1c0de5-0000-4000-8000-00000000c11e';

  it('When AUTH_MODE=disabled, then the page needs no sign-in', () => {
    expect(
      consoleSettings({ AUTH_MODE: 'disabled', AUTH_TENANT_ID: undefined, AUTH_AUDIENCE: [] }),
    ).toEqual({
      authMode: 'disabled',
    });
  });

  it('When AUTH_AUDIENCE names an App ID URI and a client id, then the page signs in to that client with the URI scope', () => {
    expect(
      consoleSettings({
        AUTH_MODE: 'entra',
        AUTH_TENANT_ID: tenant,
        AUTH_AUDIENCE: ['api://kv-lease', client],
      }),
    ).toEqual({
      authMode: 'entra',
      signIn: {
        clientId: client,
        authority: `https://login.microsoftonline.com/${tenant}`,
        scopes: ['api://kv-lease/user_impersonation'],
      },
    });
  });

  it('When AUTH_AUDIENCE names only the client id, then the scope uses the default App ID URI api://<client id>', () => {
    const settings = consoleSettings({
      AUTH_MODE: 'entra',
      AUTH_TENANT_ID: tenant,
      AUTH_AUDIENCE: [client],
    });
    expect(settings.signIn?.scopes).toEqual([`api://${client}/user_impersonation`]);
  });

  it('When AUTH_AUDIENCE names no client id, then sign-in is unavailable and the page is told why', () => {
    const settings = consoleSettings({
      AUTH_MODE: 'entra',
      AUTH_TENANT_ID: tenant,
      AUTH_AUDIENCE: ['api://kv-lease'],
    });
    expect(settings.signIn).toBeUndefined();
    expect(settings.signInUnavailable).toMatch(/AUTH_AUDIENCE names no client id/);
  });
});
