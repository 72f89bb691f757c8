import type { Lease } from './api';
import { h, setAttribute, setText } from './dom';
import { formatDuration, safeHttpUrl } from './format';
import { KIND_LABELS, leaseKind, leaseTarget } from './kinds';

/**
 * The active leases table: one row per lease, kept by id across polls (so
 * focus and scroll survive an update), sorted by time left, filtered by target,
 * kind and principal, with a countdown that ticks every second and removes a row
 * when its lease expires.
 *
 * NOTE: a thousand rows must render in well under a second and stay cheap
 * while the page polls: rows are cloned from one template (no HTML parsing:
 * the template is built with the DOM API), the table has a fixed layout (a
 * changed countdown does not re-measure every column), and the countdown
 * rewrites only rows on screen; a row scrolled into view is brought up to date
 * first.
 */

interface Row {
  lease: Lease;
  expiresAt: number;
  createdAt: number;
  tr: HTMLTableRowElement;
  left: HTMLTableCellElement;
  age: HTMLTableCellElement;
}

/** Rows built per task when many arrive at once (a first screen and then some). */
const CHUNK = 100;

export interface LeaseActions {
  release(lease: Lease): void;
  renew(lease: Lease): void;
}

/**
 * A reason cell: a link for an http(s) URL (a pipeline run), text otherwise,
 * then the lease's warnings (contract §4: clients print them), each as text.
 */
export function reasonCell(
  reason: string | null | undefined,
  warnings?: readonly string[],
): HTMLTableCellElement {
  const cell = h('td', { class: 'reason' });
  fillReason(cell, reason, warnings);
  return cell;
}

function fillReason(
  cell: HTMLTableCellElement,
  reason: string | null | undefined,
  warnings: readonly string[] = [],
): void {
  const href = safeHttpUrl(reason);
  if (href !== undefined && typeof reason === 'string') {
    cell.append(h('a', { href, rel: 'noopener noreferrer', target: '_blank' }, reason));
  } else {
    setText(cell, reason ?? '');
  }
  for (const warning of warnings) cell.append(h('p', { class: 'warning' }, `Warning: ${warning}`));
}

/** The kind cell's text: the kind's name (a v1 lease, without one, is on a Key Vault). */
export function kindText(lease: Pick<Lease, 'kind'>): string {
  const kind = leaseKind(lease);
  return KIND_LABELS[kind] ?? kind;
}

export class ActiveTable {
  private readonly rows = new Map<string, Row>();
  private readonly byElement = new WeakMap<Element, Row>();
  private readonly onScreen = new Set<Row>();
  private readonly observer: IntersectionObserver;
  private readonly template: HTMLTableRowElement;
  private pending: { lease: Lease; expiresAt: number }[] = [];
  private pendingTimer: ReturnType<typeof setTimeout> | undefined;
  private vaultFilter = '';
  private kindFilter = '';
  private principalFilter = '';

  constructor(
    private readonly body: HTMLTableSectionElement,
    private readonly count: HTMLElement,
    private readonly empty: HTMLElement,
    actions: LeaseActions | undefined,
  ) {
    this.template = h(
      'tr',
      {},
      h('td', { class: 'left' }),
      h('td', { class: 'vault-name' }),
      h('td', { class: 'kind' }),
      h('td', { class: 'ip' }),
      h('td', { class: 'principal' }),
      h('td', { class: 'reason' }),
      h('td', { class: 'age' }),
      actions
        ? h(
            'td',
            { class: 'actions' },
            h('button', { type: 'button', class: 'renew' }, 'Renew'),
            h('button', { type: 'button', class: 'danger release' }, 'Release'),
          )
        : undefined,
    );
    this.observer = new IntersectionObserver((entries) => {
      const now = Date.now();
      for (const entry of entries) {
        const row = this.byElement.get(entry.target);
        if (!row) continue;
        if (entry.isIntersecting) {
          this.onScreen.add(row);
          this.paint(row, now);
        } else this.onScreen.delete(row);
      }
    });
    if (actions) {
      // One listener for every button of the table.
      body.addEventListener('click', (event) => {
        const button = (event.target as Element).closest('button');
        const row = button && this.byElement.get(button.closest('tr') as Element);
        if (!button || !row) return;
        if (button.classList.contains('release')) actions.release(row.lease);
        else if (button.classList.contains('renew')) actions.renew(row.lease);
      });
    }
  }

  /** Each filter is '' for all; `vault` is a target's name, `kind` one of the kinds. */
  filter(vault: string, principal: string, kind = ''): void {
    this.vaultFilter = vault;
    this.kindFilter = kind;
    this.principalFilter = principal.trim().toLowerCase();
    this.applyFilters();
  }

  /**
   * Bring the table in line with the API's list of active leases. New rows
   * are built soonest expiry first, CHUNK at a time: the first screen shows at
   * once and the rest follow in later tasks, so the page never freezes.
   * Resolves once every row is in the table.
   */
  update(leases: Lease[], now: number): Promise<void> {
    const seen = new Set<string>();
    const fresh: { lease: Lease; expiresAt: number }[] = [];
    for (const lease of leases) {
      const expiresAt = Date.parse(lease.expiresAt);
      if (!(expiresAt > now)) continue; // expired, not swept yet
      seen.add(lease.id);
      const row = this.rows.get(lease.id);
      if (!row) fresh.push({ lease, expiresAt });
      else if (row.lease.expiresAt !== lease.expiresAt) {
        row.lease = lease;
        row.expiresAt = expiresAt;
        row.tr.dataset.expiresAt = lease.expiresAt;
        this.paint(row, now);
      }
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) this.drop(id, row);
    }
    fresh.sort((a, b) => a.expiresAt - b.expiresAt);
    clearTimeout(this.pendingTimer);
    this.pending = fresh;
    return new Promise((resolve) => {
      const step = () => {
        const batch = this.pending.splice(0, CHUNK);
        const at = Date.now();
        for (const { lease, expiresAt } of batch) {
          if (expiresAt > at) this.rows.set(lease.id, this.build(lease, expiresAt, at));
        }
        this.order();
        this.applyFilters();
        if (this.pending.length > 0) this.pendingTimer = setTimeout(step, 0);
        else resolve();
      };
      step();
    });
  }

  remove(id: string): void {
    const row = this.rows.get(id);
    if (row) this.drop(id, row);
    this.applyFilters();
  }

  /** Every second: rows on screen count down; any lease that reached its expiry leaves. */
  tick(now: number): void {
    let removed = false;
    for (const [id, row] of this.rows) {
      if (row.expiresAt <= now) {
        this.drop(id, row);
        removed = true;
      }
    }
    for (const row of this.onScreen) this.paint(row, now);
    if (removed) this.applyFilters();
  }

  private paint(row: Row, now: number): void {
    const left = row.expiresAt - now;
    setText(row.left, formatDuration(left));
    row.left.classList.toggle('soon', left < 60_000);
    setText(row.age, formatDuration(now - row.createdAt));
  }

  private drop(id: string, row: Row): void {
    this.observer.unobserve(row.tr);
    this.onScreen.delete(row);
    row.tr.remove();
    this.rows.delete(id);
  }

  private build(lease: Lease, expiresAt: number, now: number): Row {
    const tr = this.template.cloneNode(true) as HTMLTableRowElement;
    tr.dataset.leaseId = lease.id;
    tr.dataset.expiresAt = lease.expiresAt;
    const [left, vault, kind, ip, principal, reason, age, actions] = tr.cells as unknown as [
      HTMLTableCellElement,
      HTMLTableCellElement,
      HTMLTableCellElement,
      HTMLTableCellElement,
      HTMLTableCellElement,
      HTMLTableCellElement,
      HTMLTableCellElement,
      HTMLTableCellElement | undefined,
    ];
    // Every field the API answered reaches the page through setText / setAttribute: printable.
    setText(vault, leaseTarget(lease));
    setText(kind, kindText(lease));
    tr.dataset.kind = leaseKind(lease);
    setText(ip, lease.ip);
    setText(principal, lease.principal);
    fillReason(reason, lease.reason, lease.warnings);
    setAttribute(age, 'title', `since ${lease.createdAt}`);
    if (actions) {
      const label = `${lease.ip} on ${leaseTarget(lease)}`;
      const [renew, release] = [actions.children[0], actions.children[1]];
      if (renew) setAttribute(renew, 'aria-label', `Renew ${label}`);
      if (release) setAttribute(release, 'aria-label', `Release ${label}`);
    }
    const row: Row = { lease, expiresAt, createdAt: Date.parse(lease.createdAt), tr, left, age };
    this.paint(row, now);
    this.byElement.set(tr, row);
    this.observer.observe(tr);
    return row;
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
        (this.vaultFilter === '' || leaseTarget(row.lease) === this.vaultFilter) &&
        (this.kindFilter === '' || leaseKind(row.lease) === this.kindFilter) &&
        (this.principalFilter === '' ||
          row.lease.principal.toLowerCase().includes(this.principalFilter));
      if (row.tr.hidden === visible) row.tr.hidden = !visible;
      if (visible) shown += 1;
    }
    const total = this.rows.size + this.pending.length;
    setText(
      this.count,
      shown === total && this.pending.length === 0 ? `(${total})` : `(${shown} of ${total})`,
    );
    this.empty.hidden = shown > 0;
  }
}
