import { describe, expect, it } from 'vitest';

import { DomainError } from '../../src/domain/errors';
import type { AuditEntry, AuditLog } from '../../src/ports/audit-log';

const T0 = Date.parse('2026-11-25T10:00:00.000Z');
const HOUR = 3600_000;

function entry(n: number, overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    at: T0 + n * HOUR,
    action: 'grant',
    principal: n % 2 ? 'p-odd' : 'p-even',
    vault: n % 3 ? 'kv-a' : 'kv-b',
    ip: '52.1.2.3/32',
    leaseId: `kv-a.${String(n).padStart(24, '0')}`,
    outcome: 'success',
    detail: `entry ${n}`,
    ...overrides,
  };
}

/** What every AuditLog must do: the Table Storage trail and the in-memory fake alike. */
export function auditLogContract(name: string, newLog: () => AuditLog): void {
  describe(`AuditLog contract: ${name}`, () => {
    it('When entries are appended over days, then they read back newest first, all fields kept', async () => {
      const log = newLog();
      for (let n = 0; n < 30; n += 1) await log.append(entry(n));
      const { entries } = await log.query({ top: 100 });
      expect(entries.map((e) => e.detail)).toEqual(
        Array.from({ length: 30 }, (_, n) => `entry ${29 - n}`),
      );
      expect(entries[0]).toMatchObject(entry(29));
    });

    it('When filtered by vault, principal and since, then every filter applies', async () => {
      const log = newLog();
      for (let n = 0; n < 30; n += 1) await log.append(entry(n));
      const { entries } = await log.query({
        vault: 'kv-b',
        principal: 'p-odd',
        since: T0 + 10 * HOUR,
        top: 100,
      });
      expect(entries.map((e) => e.detail)).toEqual(['entry 27', 'entry 21', 'entry 15']);
    });

    it('When read in pages, then the pages cover every entry once, in order', async () => {
      const log = newLog();
      for (let n = 0; n < 25; n += 1) await log.append(entry(n));
      const seen: string[] = [];
      let continuation: string | undefined;
      do {
        const page = await log.query({ top: 7, continuation });
        expect(page.entries.length).toBeLessThanOrEqual(7);
        seen.push(...page.entries.map((e) => e.detail ?? ''));
        continuation = page.continuation;
      } while (continuation);
      expect(seen).toEqual(Array.from({ length: 25 }, (_, n) => `entry ${24 - n}`));
    });

    it('When a continuation was not issued by the log, then the query refuses it with REQUEST.INVALID', async () => {
      const log = newLog();
      await log.append(entry(1));
      const error: unknown = await log
        .query({ top: 10, continuation: 'forged!' })
        .catch((thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(DomainError);
      expect((error as DomainError).code).toBe('REQUEST.INVALID');
    });
  });
}
