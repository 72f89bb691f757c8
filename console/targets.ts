import { type Api, ApiError, type Target, type Vault } from './api';
import { type Capabilities, capabilitiesOf } from './capabilities';
import { h } from './dom';
import { formatDuration } from './format';
import { KIND_LABELS, ruleLimit, vaultAsTarget } from './kinds';

/**
 * The managed targets (contract §4): `GET /api/targets`, or on a v1 broker
 * (whose OpenAPI document has no /targets, or which answers it 404)
 * `GET /api/vaults`, Key Vaults only. Each one is a card with its kind and its
 * capacity bar against the kind's limit.
 */
export class TargetSource {
  private capabilities: Promise<Capabilities | undefined> | undefined;
  private known: Capabilities | undefined;
  /** Whether `GET /api/targets` answered; unknown until it was asked. */
  private v11: boolean | undefined;

  constructor(private readonly api: Api) {}

  /** What the broker declares, asked once per page load (undefined when its document did not load). */
  private declared(): Promise<Capabilities | undefined> {
    this.capabilities ??= this.api
      .get<unknown>('/api/openapi.json')
      .then(capabilitiesOf)
      .catch(() => undefined)
      .then((found) => (this.known = found));
    return this.capabilities;
  }

  /** Whether `kind=` may be sent to a list (a broker that does not know it refuses it). */
  takesKind(list: 'leases' | 'audit'): boolean {
    if (this.known)
      return list === 'leases' ? this.known.leaseKindFilter : this.known.auditKindFilter;
    return this.v11 === true;
  }

  async list(): Promise<Target[]> {
    const declared = await this.declared();
    if (declared?.targets !== false && this.v11 !== false) {
      try {
        const answer = await this.api.get<{ value: Target[] }>('/api/targets');
        this.v11 = true;
        return answer.value;
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
        // NOTE: once per page load: a broker upgraded meanwhile shows its targets at the next reload.
        this.v11 = false;
      }
    }
    const answer = await this.api.get<{ value: Vault[] }>('/api/vaults');
    return answer.value.map(vaultAsTarget);
  }
}

function ago(iso: string | null | undefined, now: number): string {
  if (typeof iso !== 'string') return '—';
  const at = Date.parse(iso);
  return Number.isNaN(at) ? '—' : `${formatDuration(now - at)} ago`;
}

export function targetCard(target: Target, now: number): HTMLLIElement {
  const others = Math.max(0, target.totalRules - target.brokerRules);
  const max = ruleLimit(target);
  const kind = KIND_LABELS[target.kind] ?? target.kind;
  const brokerBar = h('span', { class: 'broker' });
  const othersBar = h('span', { class: 'others' });
  // CSSOM, not a style attribute: allowed under style-src 'self'.
  // A non-zero share stays visible (3 px) even at 1 rule of 1000.
  const width = (n: number) => (n > 0 ? `max(3px, ${Math.min(100, (n / max) * 100)}%)` : '0');
  brokerBar.style.width = width(target.brokerRules);
  othersBar.style.width = width(others);
  const summary = `${target.totalRules} of ${max} rules used (the limit of a ${kind}): ${target.brokerRules} held by the broker, ${others} others`;
  // Older brokers may leave healthy out: then no badge rather than a guess.
  const health = target.healthy as boolean | undefined;
  const unhealthy = health === false;
  return h(
    'li',
    {
      class: unhealthy ? 'vault unhealthy' : 'vault',
      'data-vault': target.name,
      'data-target': target.name,
      'data-kind': target.kind,
      'data-total-rules': String(target.totalRules),
      'data-broker-rules': String(target.brokerRules),
      'data-max-rules': String(max),
    },
    h(
      'h3',
      {},
      target.name,
      ' ',
      typeof health !== 'boolean'
        ? undefined
        : h(
            'span',
            { class: unhealthy ? 'badge bad' : 'badge good' },
            unhealthy ? 'unhealthy' : 'healthy',
          ),
    ),
    h('p', { class: 'kind' }, kind),
    h('div', { class: 'bar', role: 'img', 'aria-label': summary }, brokerBar, othersBar),
    h('p', { class: 'rules' }, `${target.totalRules} / ${max} rules`),
    h(
      'p',
      { class: 'legend' },
      h('span', { class: 'broker-key', 'aria-hidden': 'true' }),
      `broker ${target.brokerRules}`,
      h('span', { class: 'others-key', 'aria-hidden': 'true' }),
      `others ${others}`,
    ),
    h(
      'p',
      { class: 'active-leases' },
      `${target.activeLeases} active lease${target.activeLeases === 1 ? '' : 's'}`,
    ),
    !target.dataPlane ? undefined : h('p', { class: 'data-plane' }, target.dataPlane),
    !target.lastPassAt
      ? undefined
      : h(
          'p',
          { class: 'last-pass', title: target.lastPassAt },
          `last writer pass ${ago(target.lastPassAt, now)}`,
        ),
    !target.lastError
      ? undefined
      : h(
          'p',
          { class: 'last-error', title: target.lastErrorAt },
          `last error: ${target.lastError}`,
        ),
  );
}
