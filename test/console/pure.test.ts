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

describe('The console CSV export', () => {
  it.each([
    ['=HYPERLINK("http://evil")', `"'=HYPERLINK(""http://evil"")"`],
    ['+1', `"'+1"`],
    ['-2+3', `"'-2+3"`],
    ['@SUM(A1)', `"'@SUM(A1)"`],
    ['\tx', `"'\tx"`],
    ['plain, "quoted"', '"plain, ""quoted"""'],
    ['line\nbreak', '"line\nbreak"'],
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
