import { randomUUID } from 'node:crypto';

import type {
  AuditItem,
  GrantBody,
  Lease,
  LeaseStatusFilter,
  Page,
  Target,
  Vault,
  WhoAmI,
} from '../../src/contract';
import { UsageError } from './errors';
import { type RetryInfo, retryingFetch } from './retry';

/**
 * The resources as the broker answers them: the types of the public contract
 * (src/contract, types only, so the bundles carry none of its code).
 */
export type {
  AuditItem as AuditEntry,
  Lease,
  Target as TargetSummary,
  Vault as VaultSummary,
  WhoAmI,
};

/** Resolves to a bearer token (without the `Bearer ` prefix). */
export type TokenProvider = () => Promise<string>;

export interface BrokerClientOptions {
  /** e.g. `https://func-x.azurewebsites.net`, with or without `/api`. */
  baseUrl: string;
  /** Undefined: no Authorization header (a broker with AUTH_MODE=disabled). */
  token?: TokenProvider | undefined;
  /** Added to the User-Agent, e.g. `kv-lease-cli/0.1.0`. */
  userAgent?: string | undefined;
  onRetry?: ((info: RetryInfo) => void) | undefined;
  /** Another fetch (a proxy agent, tests); the global one by default. */
  fetch?: typeof fetch | undefined;
}

export interface CallOptions {
  /** Overall limit of the call, retries included. Default 120 s. */
  deadlineMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** The grant's body (the contract's `GrantRequest`) and its `Idempotency-Key`. */
export interface GrantRequest extends GrantBody {
  /** Generated (randomUUID) before the first attempt when absent, so retries never double-grant. */
  idempotencyKey?: string | undefined;
}

export type { LeaseStatusFilter };

export const DEFAULT_DEADLINE_MS = 120_000;
/** A loop guard: no list of this API is anywhere near this many pages. */
const MAX_PAGES = 10_000;

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/i;

/** `https://host[/prefix]/api` from what a user typed; refuses what cannot be a broker URL. */
export function normaliseBaseUrl(input: string, withToken: boolean): URL {
  let url: URL;
  try {
    url = new URL(input.trim());
  } catch {
    throw new UsageError(
      `'${input}' is not a broker URL: give one like https://<function-app>.azurewebsites.net`,
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new UsageError(`the broker URL must be https://..., not ${url.protocol}`);
  }
  if (url.protocol === 'http:' && withToken && !LOOPBACK.test(url.hostname)) {
    throw new UsageError(
      `refusing to send a token over plain http to ${url.host}: use the broker's https:// URL`,
    );
  }
  url.search = '';
  url.hash = '';
  const path = url.pathname.replace(/\/+$/, '');
  url.pathname = /\/api$/i.test(path) ? path : `${path}/api`;
  return url;
}

/**
 * The kv-lease broker's HTTP API. Every call retries throttling, gateway errors and network
 * errors within its deadline (see `retryingFetch`); error answers become `ProblemError`s.
 */
export class BrokerClient {
  private readonly base: URL;

  constructor(private readonly options: BrokerClientOptions) {
    this.base = normaliseBaseUrl(options.baseUrl, options.token !== undefined);
  }

  /** The API base in use, e.g. `https://func-x.azurewebsites.net/api`. */
  get baseUrl(): string {
    return this.base.toString();
  }

  async grant(request: GrantRequest, options: CallOptions = {}): Promise<Lease> {
    // NOTE: the key is fixed before the first attempt: a retry after a lost answer gets the
    // lease the first attempt created (200), not a second one.
    const { idempotencyKey = randomUUID(), ...body } = request;
    return this.call<Lease>('POST', 'leases', options, {
      body: dropUndefined(body),
      headers: { 'Idempotency-Key': idempotencyKey },
    });
  }

  get(id: string, options: CallOptions = {}): Promise<Lease> {
    return this.call<Lease>('GET', `leases/${encodeURIComponent(id)}`, options);
  }

  renew(id: string, ttlSeconds?: number, options: CallOptions = {}): Promise<Lease> {
    return this.call<Lease>('POST', `leases/${encodeURIComponent(id)}/renew`, options, {
      body: ttlSeconds === undefined ? {} : { ttlSeconds },
    });
  }

  /** 404 is a ProblemError `lease-not-found`; a lease that already ended comes back unchanged. */
  release(id: string, options: CallOptions = {}): Promise<Lease> {
    return this.call<Lease>('DELETE', `leases/${encodeURIComponent(id)}`, options);
  }

  /** Every page, following `nextLink`. */
  listLeases(
    query: { vault?: string | undefined; status?: LeaseStatusFilter | undefined } = {},
    options: CallOptions = {},
  ): Promise<Lease[]> {
    return this.pages<Lease>('leases', dropUndefined(query), options);
  }

  /** The caller as the broker sees it; changes nothing. A broker older than v1.1 answers 404. */
  whoami(options: CallOptions = {}): Promise<WhoAmI> {
    return this.call<WhoAmI>('GET', 'whoami', options);
  }

  async vaults(options: CallOptions = {}): Promise<Vault[]> {
    return (await this.call<Page<Vault>>('GET', 'vaults', options)).value;
  }

  /**
   * Every managed target, whatever its kind (contract §4). A broker older than v1.1 answers 404
   * (its `GET /api/vaults` lists the Key Vaults).
   */
  async targets(options: CallOptions = {}): Promise<Target[]> {
    return (await this.call<Page<Target>>('GET', 'targets', options)).value;
  }

  /** Newest first, every page. `since` is an ISO 8601 timestamp. */
  audit(
    query: {
      vault?: string | undefined;
      principal?: string | undefined;
      since?: string | undefined;
    } = {},
    options: CallOptions = {},
  ): Promise<AuditItem[]> {
    return this.pages<AuditItem>('audit', dropUndefined(query), options);
  }

  private url(path: string, query: Record<string, string> = {}): URL {
    const url = new URL(`${this.base.pathname}/${path}`, this.base);
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    return url;
  }

  private async pages<T>(
    path: string,
    query: Record<string, string>,
    options: CallOptions,
  ): Promise<T[]> {
    const items: T[] = [];
    const seen = new Set<string>();
    let url: URL | undefined = this.url(path, query);
    const started = Date.now();
    const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    while (url && seen.size < MAX_PAGES) {
      seen.add(url.toString());
      const remaining = deadlineMs - (Date.now() - started);
      const page: Page<T> = await this.send(url, 'GET', {
        ...options,
        deadlineMs: Math.max(1, remaining),
      });
      items.push(...page.value);
      url = page.nextLink ? this.nextPage(page.nextLink, url) : undefined;
      if (url && seen.has(url.toString())) break;
    }
    return items;
  }

  /**
   * The next page. NOTE: the bearer token only goes to the broker's own origin: a `nextLink` on
   * another origin (the host's internal name behind a front end) keeps our path and takes only
   * its query (the `$skiptoken`).
   */
  private nextPage(nextLink: string, current: URL): URL {
    const next = new URL(nextLink, current);
    if (next.origin === this.base.origin) return next;
    const rebased = new URL(current.toString());
    rebased.search = next.search;
    return rebased;
  }

  private call<T>(
    method: string,
    path: string,
    options: CallOptions,
    extra: { body?: object; headers?: Record<string, string> } = {},
  ): Promise<T> {
    return this.send<T>(this.url(path), method, options, extra);
  }

  private async send<T>(
    url: URL,
    method: string,
    options: CallOptions,
    extra: { body?: object; headers?: Record<string, string> } = {},
  ): Promise<T> {
    const userAgent = ['kv-lease-client/1', this.options.userAgent].filter(Boolean).join(' ');
    const response = await retryingFetch({
      what: `${method} ${url.pathname}`,
      deadlineMs: options.deadlineMs ?? DEFAULT_DEADLINE_MS,
      signal: options.signal,
      onRetry: this.options.onRetry,
      fetch: this.options.fetch,
      request: async () => {
        const headers: Record<string, string> = {
          Accept: 'application/json',
          'User-Agent': userAgent,
          ...extra.headers,
        };
        if (this.options.token) headers['Authorization'] = `Bearer ${await this.options.token()}`;
        if (extra.body !== undefined) headers['Content-Type'] = 'application/json';
        return {
          url: url.toString(),
          init: {
            method,
            headers,
            ...(extra.body === undefined ? {} : { body: JSON.stringify(extra.body) }),
          },
        };
      },
    });
    const text = await response.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new Error(`the broker's answer to ${method} ${url.pathname} was not JSON`);
    }
  }
}

function dropUndefined<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(
    Object.entries(value).filter(([, entry]) => entry !== undefined),
  ) as never;
}
