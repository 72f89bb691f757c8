import { Api, type AuditItem, type Lease, query, type Vault } from './api';
import { type ConsoleSettings, type Session, startSession } from './auth';
import { AUDIT_COLUMNS, toCsv } from './csv';
import { byId, fill, h, setText } from './dom';
import { formatDuration } from './format';
import { ActiveTable, reasonCell } from './leases';

/**
 * The operator console: signs the operator in (or not, with AUTH_MODE=disabled),
 * then polls the API every 5 s while the tab is visible and renders vaults,
 * active leases (live countdown), ended leases and the audit trail.
 */

const POLL_MS = 5000;
const ENDED_SHOWN = 50;
const AUDIT_PAGE = 100;

const status = byId('status');

function say(message: string, isError = false): void {
  status.classList.toggle('error', isError);
  setText(status, message);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : 'unexpected error';
}

function ago(iso: string | null | undefined, now: number): string {
  if (typeof iso !== 'string') return '—';
  const at = Date.parse(iso);
  return Number.isNaN(at) ? '—' : `${formatDuration(now - at)} ago`;
}

function vaultCard(vault: Vault, now: number): HTMLLIElement {
  const others = Math.max(0, vault.totalRules - vault.brokerRules);
  const max = vault.maxRules > 0 ? vault.maxRules : 1000;
  const brokerBar = h('span', { class: 'broker' });
  const othersBar = h('span', { class: 'others' });
  // CSSOM, not a style attribute: allowed under style-src 'self'.
  // A non-zero share stays visible (3 px) even at 1 rule of 1000.
  const width = (n: number) => (n > 0 ? `max(3px, ${Math.min(100, (n / max) * 100)}%)` : '0');
  brokerBar.style.width = width(vault.brokerRules);
  othersBar.style.width = width(others);
  const summary = `${vault.totalRules} of ${max} rules used: ${vault.brokerRules} held by the broker, ${others} others`;
  const unhealthy = vault.healthy === false;
  return h(
    'li',
    {
      class: unhealthy ? 'vault unhealthy' : 'vault',
      'data-vault': vault.name,
      'data-total-rules': String(vault.totalRules),
      'data-broker-rules': String(vault.brokerRules),
      'data-max-rules': String(max),
    },
    h(
      'h3',
      {},
      vault.name,
      ' ',
      typeof vault.healthy !== 'boolean'
        ? undefined
        : h(
            'span',
            { class: unhealthy ? 'badge bad' : 'badge good' },
            unhealthy ? 'unhealthy' : 'healthy',
          ),
    ),
    h('div', { class: 'bar', role: 'img', 'aria-label': summary }, brokerBar, othersBar),
    h('p', { class: 'rules' }, `${vault.totalRules} / ${max} rules`),
    h(
      'p',
      { class: 'legend' },
      h('span', { class: 'broker-key', 'aria-hidden': 'true' }),
      `broker ${vault.brokerRules}`,
      h('span', { class: 'others-key', 'aria-hidden': 'true' }),
      `others ${others}`,
    ),
    h(
      'p',
      { class: 'active-leases' },
      `${vault.activeLeases} active lease${vault.activeLeases === 1 ? '' : 's'}`,
    ),
    !vault.lastPassAt
      ? undefined
      : h(
          'p',
          { class: 'last-pass', title: vault.lastPassAt },
          `last writer pass ${ago(vault.lastPassAt, now)}`,
        ),
    !vault.lastError
      ? undefined
      : h('p', { class: 'last-error' }, `last error: ${vault.lastError}`),
  );
}

function endedRow(lease: Lease): HTMLTableRowElement {
  const ended = lease.endedAt ?? lease.expiresAt;
  return h(
    'tr',
    { 'data-lease-id': lease.id },
    h('td', { title: ended }, new Date(ended).toLocaleString()),
    h('td', {}, lease.status),
    h('td', {}, lease.vault),
    h('td', {}, lease.ip),
    h('td', { class: 'principal' }, lease.principal),
    reasonCell(lease.reason),
    h('td', {}, formatDuration(Date.parse(ended) - Date.parse(lease.createdAt))),
  );
}

function auditRow(item: AuditItem): HTMLTableRowElement {
  return h(
    'tr',
    {},
    h('td', { title: item.at }, new Date(item.at).toLocaleString()),
    h('td', {}, item.action),
    h('td', {}, item.outcome),
    h('td', { class: 'principal' }, item.principal),
    h('td', {}, item.vault ?? ''),
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
    h('option', { value: '' }, 'all vaults'),
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
    `${lease.ip} on ${lease.vault}, held by ${lease.principal}. The rule leaves the vault now (unless another lease holds the same IP).`,
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
  byId('app').hidden = false;
  byId('actions-head').hidden = !admin;

  const busy = new Set<string>();
  let pollSoon: () => void = () => undefined;
  const act = async (what: string, lease: Lease, call: () => Promise<Lease>) => {
    if (busy.has(lease.id)) return;
    busy.add(lease.id);
    try {
      const updated = await call();
      say(
        `${what}: ${updated.ip} on ${updated.vault} (${updated.status}, until ${updated.endedAt ?? updated.expiresAt})`,
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
  const principalFilter = byId<HTMLInputElement>('filter-principal');
  const refilter = () => table.filter(vaultFilter.value, principalFilter.value);
  vaultFilter.addEventListener('change', refilter);
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
  let auditNext: string | undefined;
  const auditQuery = (top: number) => {
    const since = byId<HTMLInputElement>('audit-since').value;
    return query('/api/audit', {
      vault: auditVault.value,
      principal: byId<HTMLInputElement>('audit-principal').value.trim(),
      since: since === '' ? undefined : new Date(since).toISOString(),
      $top: String(top),
    });
  };
  const loadAudit = async (path: string, append: boolean) => {
    try {
      const page = await api.get<{ value: AuditItem[]; nextLink?: string }>(path);
      const rows = page.value.map(auditRow);
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
        const items = await api.all<AuditItem>(auditQuery(1000));
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
      // GET /api/vaults, which reads every firewall live.
      const list = api.all<Lease>('/api/leases?status=active&$top=1000');
      const leases = list.then((active) => {
        if (first) performance.mark('kv-lease:leases-fetched');
        const complete = table.update(active, Date.now());
        knownVaults(active.map((lease) => lease.vault));
        if (!first) return complete;
        // Rendered means laid out and painted: each mark follows the next frame.
        const painted = (mark: string) => {
          requestAnimationFrame(() => setTimeout(() => performance.mark(mark)));
        };
        painted('kv-lease:first-render');
        return complete.then(() => painted('kv-lease:all-rows'));
      });
      // The first time, the table's list goes alone: the operator waits for it, and the
      // broker answers it faster without the firewall reads of GET /api/vaults beside it.
      if (first) await list.catch(() => undefined);
      const vaults = reader
        ? api.get<{ value: Vault[] }>('/api/vaults').then((answer) => {
            const now = Date.now();
            fill(byId('vaults'), ...answer.value.map((vault) => vaultCard(vault, now)));
            knownVaults(answer.value.map((vault) => vault.name));
          })
        : Promise.resolve();
      const ended = Promise.all(
        (['released', 'expired'] as const).map((state) =>
          api.get<{ value: Lease[] }>(`/api/leases?status=${state}&$top=${ENDED_SHOWN}`),
        ),
      ).then((lists) => {
        const latest = lists
          .flatMap((list) => list.value)
          .sort(
            (a, b) => Date.parse(b.endedAt ?? b.expiresAt) - Date.parse(a.endedAt ?? a.expiresAt),
          )
          .slice(0, ENDED_SHOWN);
        endedBody.replaceChildren(...latest.map(endedRow));
      });
      await Promise.all([leases, vaults, ended]);
      setText(byId('refreshed'), `updated ${new Date().toLocaleTimeString()}`);
      if (first) {
        first = false;
        document.body.dataset.rendered = 'true';
        if (reader) void loadAudit(auditQuery(AUDIT_PAGE), false);
      }
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
