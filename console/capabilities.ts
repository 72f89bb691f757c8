/**
 * What the broker the page talks to can do, read from its OpenAPI document
 * (`GET /api/openapi.json`, open to anyone): whether it has
 * `GET /api/targets` and whether its lease and audit lists take `kind=`.
 *
 * NOTE: asking the document rather than trying `GET /api/targets` and taking
 * a 404 for "a v1 broker" keeps the browser's console clean (every 404 is an
 * error line there) and tells apart a broker that takes `kind=` from one that
 * would refuse it with a 400 (the list queries refuse unknown parameters).
 * Pure: unit-tested in test/console/timeline.test.ts against the broker's own document.
 */

export interface Capabilities {
  targets: boolean;
  leaseKindFilter: boolean;
  auditKindFilter: boolean;
}

function queryParameters(document: unknown, path: string): string[] {
  const paths = (document as { paths?: Record<string, unknown> } | null)?.paths;
  const get = (paths?.[path] as { get?: { parameters?: unknown } } | undefined)?.get;
  const parameters = Array.isArray(get?.parameters) ? (get.parameters as unknown[]) : [];
  return parameters
    .filter(
      (p): p is { name: string; in: string } =>
        typeof (p as { name?: unknown } | null)?.name === 'string' &&
        (p as { in?: unknown }).in === 'query',
    )
    .map((p) => p.name);
}

/** The capabilities a document declares; undefined when it is not an OpenAPI document with paths. */
export function capabilitiesOf(document: unknown): Capabilities | undefined {
  const paths = (document as { paths?: unknown } | null)?.paths;
  if (paths === null || typeof paths !== 'object') return undefined;
  return {
    targets: Object.hasOwn(paths, '/targets'),
    leaseKindFilter: queryParameters(document, '/leases').includes('kind'),
    auditKindFilter: queryParameters(document, '/audit').includes('kind'),
  };
}
