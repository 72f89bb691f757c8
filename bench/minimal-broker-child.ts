import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import { KeyVaultManagementClient } from '@azure/arm-keyvault';

/**
 * The "minimal broker" of issue #16, the yardstick of scenario 14: a
 * single-purpose service that adds the caller's IP to one Key Vault and
 * nothing else. No store, no lock, no lease, no audit: each instance batches
 * the grants that arrive while its write is in flight, reads the vault, sends
 * one PATCH with the batch added, answers the batch when it succeeded and
 * retries after a 409 (100 ms + jitter, as kv-lease does). It keeps no
 * promise across instances (a PATCH built on a stale read can drop another
 * instance's rule); the scenario counts those losses beside its latency.
 *
 * Env: ARM_ENDPOINT, ARM_CA (a PEM file), ARM_TOKEN, SUBSCRIPTION, RESOURCE_GROUP.
 * Prints `{"ready":true,"url":...,"pid":...}` once listening.
 */

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const client = new KeyVaultManagementClient(
  {
    getToken: () =>
      Promise.resolve({ token: env('ARM_TOKEN'), expiresOnTimestamp: Date.now() + 3600e3 }),
  },
  env('SUBSCRIPTION'),
  {
    endpoint: env('ARM_ENDPOINT'),
    credentials: { scopes: ['https://management.azure.com/.default'] },
    tlsOptions: { ca: readFileSync(env('ARM_CA'), 'utf8') },
    retryOptions: { maxRetries: 0 },
  },
);
const group = env('RESOURCE_GROUP');

interface Pending {
  ip: string;
  answer: (status: number) => void;
}
const queues = new Map<string, Pending[]>();
const writing = new Set<string>();

async function drain(vault: string): Promise<void> {
  if (writing.has(vault)) return;
  writing.add(vault);
  try {
    for (;;) {
      const batch = (queues.get(vault) ?? []).splice(0);
      if (batch.length === 0) return;
      for (;;) {
        try {
          const read = await client.vaults.get(group, vault);
          const acls = read.properties.networkAcls ?? {};
          const rules = new Set((acls.ipRules ?? []).map((rule) => rule.value));
          for (const pending of batch) rules.add(`${pending.ip}/32`);
          await client.vaults.update(group, vault, {
            properties: {
              networkAcls: { ...acls, ipRules: [...rules].map((value) => ({ value })) },
            },
          });
          for (const pending of batch) pending.answer(201);
          break;
        } catch (error) {
          const status = (error as { statusCode?: number }).statusCode ?? 0;
          if (status !== 409 && status !== 429 && status < 500) {
            for (const pending of batch) pending.answer(502);
            break;
          }
          // Latecomers join the retry: they are added by the same write.
          batch.push(...(queues.get(vault) ?? []).splice(0));
          await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 100));
        }
      }
    }
  } finally {
    writing.delete(vault);
  }
}

const server = createServer((request, response) => {
  let body = '';
  request.on('data', (chunk: Buffer) => (body += chunk.toString()));
  request.on('end', () => {
    const ip =
      String(request.headers['x-forwarded-for'] ?? '')
        .split(',')[0]
        ?.trim() ?? '';
    let vault = '';
    try {
      const named = (JSON.parse(body) as { vault?: unknown }).vault;
      vault = typeof named === 'string' ? named : '';
    } catch {
      // answered 400 below
    }
    if (request.method !== 'POST' || !vault || !ip) {
      response.writeHead(400).end();
      return;
    }
    const queue = queues.get(vault) ?? [];
    queues.set(vault, queue);
    queue.push({
      ip,
      answer: (status) =>
        response
          .writeHead(status, { 'content-type': 'application/json' })
          .end(JSON.stringify({ id: `${vault}-${ip}` })),
    });
    void drain(vault);
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(
    `${JSON.stringify({ ready: true, url: `http://127.0.0.1:${port}`, pid: process.pid })}\n`,
  );
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
