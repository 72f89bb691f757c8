import { Api, type AuditItem, type Lease, type Page, query } from './api';
import { type ConsoleSettings, type Session, startSession } from './auth';
import { leaseChart } from './chart';
import { AUDIT_COLUMNS, toCsv } from './csv';
import { byId, fill, h, setText } from './dom';
import { formatDuration } from './format';
import { recentLeases } from './history';
import { auditKind, auditTarget, KIND_LABELS, leaseKind, leaseTarget } from './kinds';
import { ActiveTable, kindText, reasonCell } from './leases';
import { targetCard, TargetSource } from './targets';
import { activeTimeline, DAY_MS } from './timeline';

/**
 * The operator console: signs the operator in (or not, with AUTH_MODE=disabled),
 * then polls the API every 5 s while the tab is visible and renders the
 * targets (Key Vaults, storage accounts, SQL servers), active leases (live
 * countdown), ended leases and the audit trail, and once a minute the chart of
 * active leases per target over the last 24 hours.
 */

const POLL_MS = 5000;
const ENDED_SHOWN = 50;
const AUDIT_PAGE = 100;
/** The chart reads every lease of the last day: once a minute is enough, and at most this many pages. */
const CHART_EVERY_MS = 60_000;
const CHART_PAGES = 20;
const CHART_PAGE_SIZE = 1000;

const status = byId('status');

function say(message: string, isError = false): void {
  status.classList.toggle('error', isError);
  setText(status, message);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : 'unexpected error';
}

function endedRow(lease: Lease): HTMLTableRowElement {
  const ended = lease.endedAt ?? lease.expiresAt;
  return h(
    'tr',
    { 'data-lease-id': lease.id },
    h('td', { title: ended }, new Date(ended).toLocaleString()),
    h('td', {}, lease.status),
    h('td', {}, leaseTarget(lease)),
    h('td', { class: 'kind' }, kindText(lease)),
    h('td', {}, lease.ip),
    h('td', { class: 'principal' }, lease.principal),
    reasonCell(lease.reason, lease.warnings),
    h('td', {}, formatDuration(Date.parse(ended) - Date.parse(lease.createdAt))),
  );
}

function auditRow(item: AuditItem): HTMLTableRowElement {
  const kind = auditKind(item);
  return h(
    'tr',
    { 'data-kind': kind },
    h('td', { title: item.at }, new Date(item.at).toLocaleString()),
    h('td', {}, item.action),
    h('td', {}, item.outcome),
    h('td', { class: 'principal' }, item.principal),
    h('td', {}, auditTarget(item)),
    h('td', { class: 'kind' }, kind === undefined ? '' : (KIND_LABELS[kind] ?? kind)),
    h('td', {}, item.ip ?? ''),
    h('td', { class: 'lease-id' }, item.leaseId ?? ''),
    h('td', { class: 'detail' }, item.detail ?? ''),
  );
}

function setOptions(select: HTMLSelectElement, names: string[]): void {
  const current = select.value;
  const have = [...select.options].slice(1).map((option) => option.value);
  if (have.join(',') === names.join(',')) return;
  fill(
    select,
    h('option', { value: '' }, 'all targets'),
    ...names.map((name) => h('option', { value: name }, name)),
  );
  select.value = names.includes(current) ? current : '';
}

function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h('a', { href: url, download: name, class: 'sr-only' }, name);
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function confirmRelease(lease: Lease): Promise<boolean> {
  const dialog = byId<HTMLDialogElement>('confirm');
  setText(
    byId('confirm-text'),
    `${lease.ip} on ${leaseTarget(lease)}, held by ${lease.principal}. The rule leaves the ${KIND_LABELS[leaseKind(lease)] ?? 'target'} now (unless another lease holds the same IP).`,
  );
  return new Promise((resolve) => {
    const ok = byId<HTMLButtonElement>('confirm-ok');
    const cancel = byId<HTMLButtonElement>('confirm-cancel');
    const done = (answer: boolean) => {
      ok.removeEventListener('click', yes);
      cancel.removeEventListener('click', no);
      dialog.removeEventListener('close', closed);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const yes = () => done(true);
    const no = () => done(false);
    const closed = () => done(false);
    ok.addEventListener('click', yes);
    cancel.addEventListener('click', no);
    dialog.addEventListener('close', closed);
    dialog.showModal();
    cancel.focus();
  });
}

function run(session: Session): void {
  const api = new Api(() => session.token());
  const admin = session.roles.has('Lease.Admin');
  const reader = session.roles.has('Lease.Read') || admin;
  const targets = new TargetSource(api);
  byId('app').hidden = false;
  byId('actions-head').hidden = !admin;
  byId('chart-section').hidden = !reader;

  const busy = new Set<string>();
  let pollSoon: () => void = () => undefined;
  const act = async (what: string, lease: Lease, call: () => Promise<Lease>) => {
    if (busy.has(lease.id)) return;
    busy.add(lease.id);
    try {
      const updated = await call();
      say(
        `${what}: ${updated.ip} on ${leaseTarget(updated)} (${updated.status}, until ${updated.endedAt ?? updated.expiresAt})`,
      );
      if (updated.status !== 'active') table.remove(updated.id);
      pollSoon();
    } catch (error) {
      say(`${what} failed: ${errorText(error)}`, true);
    } finally {
      busy.delete(lease.id);
    }
  };
  const table = new ActiveTable(
    byId<HTMLTableElement>('active').tBodies[0] as HTMLTableSectionElement,
    byId('active-count'),
    byId('active-empty'),
    admin
      ? {
          release: (lease) =>
            void confirmRelease(lease).then((yes) =>
              yes
                ? act('Released', lease, () =>
                    api.request<Lease>('DELETE', `/api/leases/${encodeURIComponent(lease.id)}`),
                  )
                : undefined,
            ),
          renew: (lease) =>
            void act('Renewed', lease, () =>
              api.request<Lease>('POST', `/api/leases/${encodeURIComponent(lease.id)}/renew`, {}),
            ),
        }
      : undefined,
  );

  const vaultFilter = byId<HTMLSelectElement>('filter-vault');
  const kindFilter = byId<HTMLSelectElement>('filter-kind');
  const principalFilter = byId<HTMLInputElement>('filter-principal');
  const refilter = () => table.filter(vaultFilter.value, principalFilter.value, kindFilter.value);
  vaultFilter.addEventListener('change', refilter);
  // The ended leases are asked of the API by kind: a change asks again.
  kindFilter.addEventListener('change', () => {
    refilter();
    pollSoon();
  });
  // Typing filters a thousand rows: once the operator pauses, not at every key.
  let typing: ReturnType<typeof setTimeout> | undefined;
  principalFilter.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(refilter, 120);
  });
  byId('filters').addEventListener('submit', (event) => event.preventDefault());

  // --- the audit trail: the API's filters, paged by nextLink, exported as CSV
  const auditBody = byId<HTMLTableElement>('audit').tBodies[0] as HTMLTableSectionElement;
  const more = byId<HTMLButtonElement>('audit-more');
  const auditVault = byId<HTMLSelectElement>('audit-vault');
  const auditKindFilter = byId<HTMLSelectElement>('audit-kind');
  let auditNext: string | undefined;
  /**
   * `kind=` goes only to a broker that takes it (a v1 broker refuses a query
   * parameter it does not know); the page filters by kind too, so a v1
   * broker's entries (all Key Vault) are filtered the same way.
   */
  const kindParam = (list: 'leases' | 'audit', select: HTMLSelectElement) =>
    targets.takesKind(list) && select.value !== '' ? select.value : undefined;
  const auditMatches = (item: AuditItem) =>
    auditKindFilter.value === '' || auditKind(item) === auditKindFilter.value;
  const auditQuery = (top: number) => {
    const since = byId<HTMLInputElement>('audit-since').value;
    return query('/api/audit', {
      vault: auditVault.value,
      kind: kindParam('audit', auditKindFilter),
      principal: byId<HTMLInputElement>('audit-principal').value.trim(),
      since: since === '' ? undefined : new Date(since).toISOString(),
      $top: String(top),
    });
  };
  const loadAudit = async (path: string, append: boolean) => {
    try {
      const page = await api.get<{ value: AuditItem[]; nextLink?: string }>(path);
      const rows = page.value.filter(auditMatches).map(auditRow);
      if (append) auditBody.append(...rows);
      else auditBody.replaceChildren(...rows);
      auditNext = page.nextLink;
      more.hidden = auditNext === undefined;
    } catch (error) {
      say(`Audit trail: ${errorText(error)}`, true);
    }
  };
  byId('audit-form').addEventListener('submit', (event) => {
    event.preventDefault();
    void loadAudit(auditQuery(AUDIT_PAGE), false);
  });
  more.addEventListener('click', () => {
    if (auditNext !== undefined) void loadAudit(auditNext, true);
  });
  byId('audit-csv').addEventListener('click', () => {
    void (async () => {
      try {
        say('Exporting the audit trail…');
        const items = (await api.all<AuditItem>(auditQuery(1000))).filter(auditMatches);
        const stamp = new Date().toISOString().replace(/[:.]/g, '-');
        download(
          `kv-lease-audit-${stamp}.csv`,
          toCsv(AUDIT_COLUMNS, items),
          'text/csv;charset=utf-8',
        );
        say(`Exported ${items.length} audit entr${items.length === 1 ? 'y' : 'ies'}.`);
      } catch (error) {
        say(`Export failed: ${errorText(error)}`, true);
      }
    })();
  });

  // --- the chart: every lease of the last 24 hours, read in pages, once a minute
  let targetNames: string[] = [];
  const chart = byId('chart');
  let chartAt = Number.NEGATIVE_INFINITY;
  let charting = false;
  const refreshChart = async () => {
    if (charting) return;
    charting = true;
    try {
      const now = Date.now();
      const { leases, pages, complete } = await recentLeases(
        (path) => api.get<Page<Lease>>(path),
        targetNames,
        now - DAY_MS,
        { maxPages: CHART_PAGES, pageSize: CHART_PAGE_SIZE },
      );
      const timeline = activeTimeline(leases, { now });
      fill(chart, ...leaseChart({ timeline, complete, pages }));
      chart.dataset.state = complete ? 'complete' : 'partial';
    } catch (error) {
      fill(
        chart,
        h('p', { class: 'chart-note warning' }, `The chart could not load: ${errorText(error)}`),
      );
      chart.dataset.state = 'failed';
    } finally {
      chartAt = Date.now();
      charting = false;
    }
  };

  // --- polling: every 5 s while the tab is visible, never two at once
  const endedBody = byId<HTMLTableElement>('ended').tBodies[0] as HTMLTableSectionElement;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let polling = false;
  let first = true;
  let pollFailed = false;
  const names = new Set<string>();
  const knownVaults = (found: string[]) => {
    const before = names.size;
    for (const name of found) names.add(name);
    if (names.size === before) return;
    const sorted = [...names].sort();
    setOptions(vaultFilter, sorted);
    setOptions(auditVault, sorted);
  };
  const poll = async () => {
    if (polling) return;
    polling = true;
    clearTimeout(timer);
    performance.mark('kv-lease:poll-start');
    try {
      // Each part renders as soon as its answer is in: the leases table does not wait for
      // GET /api/targets, which reads every firewall live.
      const list = api.all<Lease>('/api/leases?status=active&$top=1000');
      const leases = list.then((active) => {
        if (first) performance.mark('kv-lease:leases-fetched');
        const complete = table.update(active, Date.now());
        knownVaults(active.map(leaseTarget));
        if (!first) return complete;
        // Rendered means laid out and painted: each mark follows the next frame.
        const painted = (mark: string) => {
          requestAnimationFrame(() => setTimeout(() => performance.mark(mark)));
        };
        painted('kv-lease:first-render');
        return complete.then(() => painted('kv-lease:all-rows'));
      });
      // The first time, the table's list goes alone: the operator waits for it, and the
      // broker answers it faster without the firewall reads of GET /api/targets beside it.
      if (first) await list.catch(() => undefined);
      // Until the broker's document is read (with the targets), kind= is not sent: the ended
      // leases are then filtered by the page alone.
      const found = reader
        ? targets.list().then((answer) => {
            const now = Date.now();
            fill(byId('vaults'), ...answer.map((target) => targetCard(target, now)));
            targetNames = answer.map((target) => target.name);
            knownVaults(answer.map((target) => target.name));
          })
        : Promise.resolve();
      const kind = kindFilter.value;
      const ended = Promise.all(
        (['released', 'expired'] as const).map((state) =>
          api.get<{ value: Lease[] }>(
            query('/api/leases', {
              status: state,
              kind: kindParam('leases', kindFilter),
              $top: String(ENDED_SHOWN),
            }),
          ),
        ),
      ).then((lists) => {
        const latest = lists
          .flatMap((list) => list.value)
          .filter((lease) => kind === '' || leaseKind(lease) === kind)
          .sort(
            (a, b) => Date.parse(b.endedAt ?? b.expiresAt) - Date.parse(a.endedAt ?? a.expiresAt),
          )
          .slice(0, ENDED_SHOWN);
        endedBody.replaceChildren(...latest.map(endedRow));
      });
      await Promise.all([leases, found, ended]);
      setText(byId('refreshed'), `updated ${new Date().toLocaleTimeString()}`);
      if (first) {
        first = false;
        document.body.dataset.rendered = 'true';
        if (reader) void loadAudit(auditQuery(AUDIT_PAGE), false);
      }
      if (reader && Date.now() - chartAt >= CHART_EVERY_MS) void refreshChart();
      if (pollFailed) say('');
      pollFailed = false;
    } catch (error) {
      pollFailed = true;
      say(`Could not refresh: ${errorText(error)}`, true);
    } finally {
      performance.measure('kv-lease:poll', 'kv-lease:poll-start');
      polling = false;
      if (!document.hidden) timer = setTimeout(() => void poll(), POLL_MS);
    }
  };
  pollSoon = () => void poll();
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) clearTimeout(timer);
    else void poll();
  });
  setInterval(() => {
    if (!document.hidden) table.tick(Date.now());
  }, 1000);
  void poll();
}

async function main(): Promise<void> {
  performance.mark('kv-lease:script-start');
  const who = byId('who');
  try {
    const response = await fetch('/api/console/config.json', { cache: 'no-store' });
    if (!response.ok) throw new Error(`the console settings did not load (${response.status})`);
    const settings = (await response.json()) as ConsoleSettings;
    const session = await startSession(settings, (signIn) => {
      setText(who, 'not signed in');
      byId('signin').hidden = false;
      byId('signin-button').addEventListener('click', signIn);
    });
    if (!session) return;
    setText(who, session.user);
    setText(
      byId('roles'),
      session.roles.size > 0 ? `(${[...session.roles].sort().join(', ')})` : '(no roles)',
    );
    if (session.signOut) {
      const button = byId<HTMLButtonElement>('signout');
      button.hidden = false;
      button.addEventListener('click', session.signOut);
    }
    run(session);
  } catch (error) {
    setText(who, 'not signed in');
    say(`Sign-in failed: ${errorText(error)}`, true);
  }
}

void main();
