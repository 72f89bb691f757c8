import { z } from 'zod';

import type { EmulatorConfig } from './types';

export const DEFAULT_CONFIG: Readonly<EmulatorConfig> = Object.freeze({
  readLatencyMs: 0,
  writeLatencyMs: 0,
  conflictOnOverlap: true,
  faults: null,
  writeThrottle: null,
  hang: null,
  lateApply: null,
  refusals: [],
  interruptedDeletes: null,
});

const MAX_DELAY_MS = 10 * 60 * 1000;
const delayMs = z.number().int().min(0).max(MAX_DELAY_MS);
const probability = z.number().min(0).max(1);

const faultSchema = z.strictObject({
  rate: probability,
  statuses: z.array(z.number().int().min(400).max(599)).min(1),
  methods: z
    .array(z.enum(['GET', 'PATCH', 'PUT', 'DELETE']))
    .min(1)
    .optional(),
  retryAfterSeconds: z.number().int().min(0).optional(),
});

/** Every field optional: the same schema checks `configure`, `PATCH /_emulator/config` and start options. */
export const configPatchSchema = z.strictObject({
  readLatencyMs: delayMs.optional(),
  writeLatencyMs: delayMs.optional(),
  conflictOnOverlap: z.boolean().optional(),
  faults: faultSchema.nullable().optional(),
  writeThrottle: z
    .strictObject({ capacity: z.number().int().min(1), refillPerSecond: z.number().positive() })
    .nullable()
    .optional(),
  hang: z.strictObject({ rate: probability, ms: delayMs }).nullable().optional(),
  lateApply: z.strictObject({ rate: probability, ms: delayMs }).nullable().optional(),
  refusals: z
    .array(
      z.strictObject({
        vault: z.string().min(1),
        status: z.union([z.literal(400), z.literal(403), z.literal(404)]),
        methods: z
          .array(z.enum(['GET', 'PATCH', 'PUT', 'DELETE']))
          .min(1)
          .optional(),
      }),
    )
    .optional(),
  interruptedDeletes: z.strictObject({ rate: probability }).nullable().optional(),
});

/** Applies a validated patch; throws an Error naming every bad field and changes nothing. */
export function mergeConfig(current: Readonly<EmulatorConfig>, patch: unknown): EmulatorConfig {
  const parsed = configPatchSchema.safeParse(patch);
  if (!parsed.success) {
    throw new Error(`Invalid emulator config: ${z.prettifyError(parsed.error)}`);
  }
  const next: EmulatorConfig = structuredClone({ ...current });
  const updates: [string, unknown][] = Object.entries(parsed.data);
  for (const [key, value] of updates) {
    // A TypeScript caller may pass a key explicitly set to undefined: that means "leave it".
    if (value !== undefined) {
      Object.assign(next, { [key]: structuredClone(value) });
    }
  }
  return next;
}

export const vaultSpecSchema = z.strictObject({
  subscriptionId: z.string().optional(),
  resourceGroup: z.string(),
  name: z.string(),
  location: z.string().optional(),
  // The ARM validation of the rules themselves happens later, with ARM's messages.
  networkAcls: z.record(z.string(), z.unknown()).optional(),
});
