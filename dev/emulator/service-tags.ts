/**
 * The Service Tag Discovery API, `GET /subscriptions/{sub}/providers/Microsoft.Network/locations/
 * {location}/serviceTags` (`@azure/arm-network` `serviceTags.list`), in the shape of the
 * Microsoft.Network spec's `ServiceTagsListResult`. It serves a small, configurable set of
 * `AzureCloud.<region>` tags (plus `AzureCloud`, their union) with `properties.region` and
 * `addressPrefixes`; the location only picks the version in Azure, and is ignored here (every
 * region is returned, as in Azure). Reads go through the shared gate: latency, faults and a
 * `serviceTags` refusal (a missing `Microsoft.Network/locations/serviceTags/read`) apply.
 */
import ipaddr from 'ipaddr.js';
import { z } from 'zod';

import { ArmError, badRequest } from './arm-error';
import { parseJson } from './arm-exchange';
import {
  type AdminRoutes,
  type ArmRequest,
  decodeSegments,
  methodNotAllowed,
  type ModelContext,
  type ResourceModel,
} from './arm-model';
import { validateSubscriptionId } from './vault-store';

const ROUTE =
  /^\/subscriptions\/([^/]+)\/providers\/Microsoft\.Network\/locations\/([^/]+)\/serviceTags\/?$/i;

/**
 * Default ranges: public, routable blocks in Microsoft's address space (none of them private,
 * shared or documentation space), a handful per region rather than Azure's thousands. They are
 * test data, not Azure's current list: a test that cares sets its own.
 */
export const DEFAULT_SERVICE_TAGS: Readonly<ServiceTagsConfig> = Object.freeze({
  changeNumber: 1,
  regions: {
    westeurope: ['13.69.0.0/17', '20.50.0.0/18', '40.68.0.0/16', '52.166.0.0/16'],
    northeurope: ['13.69.128.0/17', '20.38.64.0/19', '40.69.0.0/18', '52.164.0.0/16'],
    eastus: ['13.68.128.0/17', '20.42.0.0/17', '40.71.0.0/16', '52.168.0.0/16'],
  },
});

const cidr = z.string().refine((text) => {
  try {
    const [network, prefix] = ipaddr.parseCIDR(text);
    return (
      network.kind() === 'ipv4' &&
      network.toString() === ipaddr.IPv4.networkAddressFromCIDR(text).toString() &&
      prefix >= 0
    );
  } catch {
    return false;
  }
}, 'must be an IPv4 CIDR with zero host bits');

export const serviceTagsSchema = z.strictObject({
  /** Bumped by Azure at each publication; clients may use it to skip an unchanged list. */
  changeNumber: z.number().int().min(1),
  /** `AzureCloud.<region>` → its prefixes, by Azure's lower-case region name. */
  regions: z.record(z.string().regex(/^[a-z0-9]+$/), z.array(cidr)),
});
export type ServiceTagsConfig = z.infer<typeof serviceTagsSchema>;

export interface ServiceTagsApi {
  get(): ServiceTagsConfig;
  /** Replaces the set; throws on an invalid one, changing nothing. */
  set(config: ServiceTagsConfig): void;
  /** Requests answered (any outcome) since the last reset. */
  gets(): number;
}

function parseConfig(input: unknown): ServiceTagsConfig {
  const parsed = serviceTagsSchema.safeParse(input);
  if (!parsed.success) {
    throw badRequest(`Invalid service tags: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

export class ServiceTagsModel implements ResourceModel {
  private config: ServiceTagsConfig;
  private requests = 0;
  readonly adminRoutes: AdminRoutes;
  readonly api: ServiceTagsApi;

  constructor(
    private readonly context: ModelContext,
    initial: ServiceTagsConfig | undefined,
  ) {
    this.config = structuredClone(
      initial === undefined ? DEFAULT_SERVICE_TAGS : parseConfig(initial),
    );
    this.api = {
      get: () => structuredClone(this.config),
      set: (config) => {
        this.config = parseConfig(config);
      },
      gets: () => this.requests,
    };
    this.adminRoutes = {
      'service-tags': {
        GET: () => ({ status: 200, body: { ...this.api.get(), gets: this.requests } }),
        PUT: (_url, body) => {
          this.api.set(parseJson(body) as ServiceTagsConfig);
          return { status: 200, body: this.api.get() };
        },
      },
    };
  }

  route(pathname: string): ((request: ArmRequest) => Promise<void>) | undefined {
    const match = ROUTE.exec(pathname);
    if (!match) return undefined;
    const [subscriptionId = '', location = ''] = decodeSegments(pathname, match.slice(1));
    return async ({ exchange }) => {
      if (exchange.req.method !== 'GET') throw methodNotAllowed(['GET'], exchange.req.method);
      validateSubscriptionId(subscriptionId);
      this.requests += 1;
      const id = `/subscriptions/${subscriptionId}/providers/Microsoft.Network/serviceTags/Public`;
      this.context.gate.maybeRefuse(
        {
          name: 'serviceTags',
          key: id.toLowerCase(),
          id: `/subscriptions/${subscriptionId}/providers/Microsoft.Network/locations/${location}`,
          type: 'Microsoft.Network/locations/serviceTags',
          notFound: () =>
            new ArmError(404, 'NotFound', `No service tags for location '${location}'.`),
        },
        'GET',
      );
      await this.context.gate.read();
      exchange.send(200, this.render(id));
    };
  }

  resetStats(): void {
    this.requests = 0;
  }

  private render(id: string): Record<string, unknown> {
    const change = String(this.config.changeNumber);
    const regions = Object.entries(this.config.regions);
    const tag = (name: string, region: string, prefixes: string[]): Record<string, unknown> => ({
      name,
      id: name,
      serviceTagChangeNumber: change,
      properties: {
        changeNumber: change,
        region,
        state: 'GA',
        systemService: '',
        addressPrefixes: [...prefixes],
        networkFeatures: ['API', 'NSG', 'UDR', 'FW'],
      },
    });
    return {
      name: 'Public',
      id,
      type: 'Microsoft.Network/serviceTags',
      changeNumber: change,
      cloud: 'Public',
      values: [
        tag(
          'AzureCloud',
          '',
          regions.flatMap(([, prefixes]) => prefixes),
        ),
        ...regions.map(([region, prefixes]) => tag(`AzureCloud.${region}`, region, prefixes)),
      ],
    };
  }
}
