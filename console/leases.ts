import type { Lease } from './api';
import { h, setText } from './dom';
import { formatDuration, safeHttpUrl } from './format';

/**
 * The active leases table: one row per lease, kept by id across polls (so
 * focus and scroll survive an update), sorted by time left, filtered by vault
 * and principal, with a countdown that ticks every second and removes a row
 * when its lease expires.
 */

interface Row {
  lease: Lease;
  expiresAt: number;
  createdAt: number;
  tr: HTMLTableRowElement;
  left: HTMLTableCellElement;
  age: HTMLTableCellElement;
}

export interface LeaseActions {
  release(lease: Lease): void;
  renew(lease: Lease): void;
}

/** A reason cell: a link for an http(s) URL (a pipeline run), text otherwise. */
export function reasonCell(reason: string | undefined): HTMLTableCellElement {
  const href = safeHttpUrl(reason);
  if (href !== undefined && reason !== undefined) {
    return h(
      'td',
      { class: 'reason' },
      h('a', { href, rel: 'noopener noreferrer', target: '_blank' }, reason),
    );
  }
  return h('td', { class: 'reason' }, reason ?? '');
}

export class ActiveTable {
  private readonly rows = new Map<string, Row>();
  private vaultFilter = '';
  private principalFilter = '';

  constructor(
    private readonly body: HTMLTableSectionElement,
    private readonly count: HTMLElement,
    private readonly empty: HTMLElement,
    private readonly actions: LeaseActions | undefined,
  ) {}

  filter(vault: string, principal: string): void {
    this.vaultFilter = vault;
    this.principalFilter = principal.trim().toLowerCase();
    this.applyFilters();
  }

  /** Bring the table in line with the API's list of active leases. */
  update(leases: Lease[], now: number): void {
    const seen = new Set<string>();
    for (const lease of leases) {
      const expiresAt = Date.parse(lease.expiresAt);
      if (!(expiresAt > now)) continue; // expired, not swept yet
      seen.add(lease.id);
      const row = this.rows.get(lease.id);
      if (!row) this.rows.set(lease.id, this.build(lease, expiresAt));
      else if (row.lease.expiresAt !== lease.expiresAt) {
        row.lease = lease;
        row.expiresAt = expiresAt;
        row.tr.dataset.expiresAt = lease.expiresAt;
      }
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) this.drop(id, row);
    }
    this.order();
    this.tick(now);
    this.applyFilters();
  }

  remove(id: string): void {
    const row = this.rows.get(id);
    if (row) this.drop(id, row);
    this.applyFilters();
  }

  /** The countdown: time left and age of every row; a lease that reached its expiry leaves. */
  tick(now: number): void {
    let removed = false;
    for (const [id, row] of this.rows) {
      const left = row.expiresAt - now;
      if (left <= 0) {
        this.drop(id, row);
        removed = true;
        continue;
      }
      setText(row.left, formatDuration(left));
      row.left.classList.toggle('soon', left < 60_000);
      setText(row.age, formatDuration(now - row.createdAt));
    }
    if (removed) this.applyFilters();
  }

  private drop(id: string, row: Row): void {
    row.tr.remove();
    this.rows.delete(id);
  }

  private build(lease: Lease, expiresAt: number): Row {
    const left = h('td', { class: 'left' });
    const age = h('td', { class: 'age', title: `since ${lease.createdAt}` });
    const cells: HTMLTableCellElement[] = [
      left,
      h('td', {}, lease.vault),
      h('td', { class: 'ip' }, lease.ip),
      h('td', { class: 'principal' }, lease.principal),
      reasonCell(lease.reason),
      age,
    ];
    if (this.actions) {
      const actions = this.actions;
      const label = `${lease.ip} on ${lease.vault}`;
      const renew = h('button', { type: 'button', 'aria-label': `Renew ${label}` }, 'Renew');
      const release = h(
        'button',
        { type: 'button', class: 'danger release', 'aria-label': `Release ${label}` },
        'Release',
      );
      renew.addEventListener('click', () => actions.renew(this.rows.get(lease.id)?.lease ?? lease));
      release.addEventListener('click', () =>
        actions.release(this.rows.get(lease.id)?.lease ?? lease),
      );
      cells.push(h('td', { class: 'actions' }, renew, release));
    }
    const tr = h('tr', { 'data-lease-id': lease.id, 'data-expires-at': lease.expiresAt }, ...cells);
    return { lease, expiresAt, createdAt: Date.parse(lease.createdAt), tr, left, age };
  }

  /** Soonest expiry first; only rows out of place are moved (moving a row would drop its focus). */
  private order(): void {
    const sorted = [...this.rows.values()].sort(
      (a, b) => a.expiresAt - b.expiresAt || a.lease.id.localeCompare(b.lease.id),
    );
    if (this.body.children.length === 0) {
      const fragment = document.createDocumentFragment();
      for (const row of sorted) fragment.append(row.tr);
      this.body.append(fragment);
      return;
    }
    let cursor: Element | null = this.body.firstElementChild;
    for (const row of sorted) {
      if (cursor === row.tr) {
        cursor = cursor.nextElementSibling;
        continue;
      }
      this.body.insertBefore(row.tr, cursor);
    }
  }

  private applyFilters(): void {
    let shown = 0;
    for (const row of this.rows.values()) {
      const visible =
        (this.vaultFilter === '' || row.lease.vault === this.vaultFilter) &&
        (this.principalFilter === '' ||
          row.lease.principal.toLowerCase().includes(this.principalFilter));
      row.tr.hidden = !visible;
      if (visible) shown += 1;
    }
    setText(
      this.count,
      shown === this.rows.size ? `(${this.rows.size})` : `(${shown} of ${this.rows.size})`,
    );
    this.empty.hidden = shown > 0;
  }
}
