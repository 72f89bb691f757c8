import type { DomainError } from './errors';
import type { Lease } from './lease';
import type { Principal } from './principal';

/**
 * What happened, as the use cases and the writer report it. The audit trail
 * (src/audit/trail.ts) is the one place that turns these into entries; a use
 * case never writes audit text itself.
 */
export type BrokerEvent =
  | { type: 'lease-granted'; by: Principal; lease: Lease }
  | { type: 'lease-renewed'; by: Principal; lease: Lease }
  | { type: 'lease-released'; by: Principal; lease: Lease }
  | {
      type: 'lease-expired';
      lease: Lease;
      /** The outcome of the firewall write that removes its rule (or of the pass, when none was needed). */
      outcome: 'success' | 'failure';
      /** What became of its rule, or why the write failed. */
      detail: string;
    }
  | {
      /**
       * A lease whose grant was answered 503 had its rule written anyway (its
       * write was under way when the grant gave up): it is ended as failed,
       * and the next pass removes the rule.
       */
      type: 'grant-withdrawn';
      lease: Lease;
      detail: string;
    }
  | {
      type: 'firewall-written';
      vault: string;
      /** The rules as the pass read them, before its write (the kind's notation). */
      read: string[];
      /** The complete list the pass wrote (a per-rule kind: its own rules, as they now stand). */
      written: string[];
      /** Rules on the target outside `written` that count against its limit (a per-rule kind's others). */
      reserved?: number | undefined;
      /** Relative to `read`. */
      added: string[];
      removed: string[];
      outcome: 'success' | 'failure';
      detail?: string | undefined;
    }
  | ({ type: 'request-refused'; error: DomainError } & Attempt)
  | ({ type: 'request-failed'; error: unknown } & Attempt);

/** A request as far as it got: only validated values, for the entry of a refusal or failure. */
export interface Attempt {
  /** What was attempted: `grant`, `list-leases`, ... */
  attempt: string;
  /** The lease action a server-side failure is recorded under. */
  action?: 'grant' | 'renew' | 'release' | undefined;
  principal?: Principal | undefined;
  vault?: string | undefined;
  ip?: string | undefined;
  leaseId?: string | undefined;
}

/** Where use cases and the writer report what happened (the audit trail). */
export interface EventSink {
  /** Resolves once the event is recorded (or its loss logged): never rejects. */
  emit(event: BrokerEvent): Promise<void>;
}
