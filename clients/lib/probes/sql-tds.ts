/**
 * PLACEHOLDER, replaced at merge by the TDS login of the SQL probe (built in parallel on another
 * branch): one TDS login with an Entra token. Until then it throws, and the SQL probe reports that
 * at once instead of waiting.
 */
export function tryTdsLogin(_options: {
  host: string;
  port: number;
  token: string;
  signal?: AbortSignal;
  trustedCa?: string;
}): Promise<
  | { result: 'refused'; clientAddress?: string }
  | { result: 'through' }
  | { result: 'failed'; reason: string; permanent: boolean }
> {
  return Promise.reject(
    new Error('not built: the TDS login of the SQL probe (clients/lib/probes/sql-tds.ts)'),
  );
}
