import type { Page } from '../src/contract';
import { sameOriginPath } from './format';

/**
 * The broker's API as the page uses it, with the operator's token when there is one.
 *
 * NOTE: the resource types are the public contract's (src/contract), imported as types
 * only: the bundle carries none of its code (no zod), and lint keeps every other
 * src/ module out of the console.
 */
export type { AuditItem, Lease, Page, Target, Vault } from '../src/contract';
export { query } from './format';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export type TokenSource = () => Promise<string | undefined>;

export class Api {
  constructor(private readonly token: TokenSource) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = await this.token();
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(sameOriginPath(path, location.origin), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // A front end's HTML error page, say: the status says enough.
      if (response.ok) throw new ApiError(response.status, 'the answer is not JSON');
    }
    if (!response.ok) {
      const problem = parsed as { title?: string; detail?: string } | undefined;
      throw new ApiError(
        response.status,
        `${response.status} ${problem?.title ?? response.statusText}${problem?.detail ? `: ${problem.detail}` : ''}`,
      );
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /** Every page of a list, following `nextLink` (on this origin only), up to `limit` items. */
  async all<T>(path: string, limit = 20_000): Promise<T[]> {
    const items: T[] = [];
    let next: string | undefined = path;
    while (next !== undefined && items.length < limit) {
      const page: Page<T> = await this.get<Page<T>>(next);
      items.push(...page.value);
      next = page.nextLink;
    }
    return items;
  }
}
