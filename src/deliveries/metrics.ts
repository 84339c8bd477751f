import { Counter, Histogram, type Registry } from 'prom-client';

export interface DeliveryMetrics {
  /** Due instant → claimed, seconds (p50/p99 from the histogram). */
  claimLag: Histogram;
  /** Due instant → sent, seconds. */
  lateness: Histogram;
  outcomes: Counter<'state'>;
  /** LINE answered 409 for a retry key it had accepted: a duplicate message prevented. */
  duplicatesPrevented: Counter;
  alerts: Counter<'reason'>;
}

export function createDeliveryMetrics(registry: Registry): DeliveryMetrics {
  const buckets = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600];
  return {
    claimLag: new Histogram({ name: 'scheduler_delivery_claim_lag_seconds', help: 'Delay from due time to claim', buckets, registers: [registry] }),
    lateness: new Histogram({ name: 'scheduler_delivery_lateness_seconds', help: 'Delay from due time to sent', buckets, registers: [registry] }),
    outcomes: new Counter({ name: 'scheduler_deliveries_total', help: 'Deliveries by final state (sent, failed, skipped, expired, cancelled, pending=retry)', labelNames: ['state'], registers: [registry] }),
    duplicatesPrevented: new Counter({ name: 'scheduler_delivery_duplicates_prevented_total', help: 'LINE 409: a retry key already accepted, so no second message', registers: [registry] }),
    alerts: new Counter({ name: 'scheduler_delivery_alerts_total', help: 'Deliveries that could not go out for a reason an operator must fix', labelNames: ['reason'], registers: [registry] }),
  };
}
