import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per app instance (tests build many), served at GET /metrics. */
export interface Metrics {
  registry: Registry;
  /** Latency of every Zoom API call (the seed asks to measure it: about 1 s per create). */
  zoomRequestSeconds: Histogram<'operation' | 'outcome'>;
  /** Outcomes of meeting work per schedule: created, adopted, updated, deleted, no_capacity, failed… */
  meetingOutcomes: Counter<'outcome'>;
  /** Schedules inside the horizon that no host can take right now. */
  schedulesWithoutCapacity: Gauge;
  /** Zoom webhook events by event and outcome (intake: duplicate, rejected, invalid; processing: applied, stale, ignored, failed…). */
  zoomWebhookEvents: Counter<'event' | 'outcome'>;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
  return {
    registry,
    zoomRequestSeconds: new Histogram({
      name: 'scheduler_zoom_request_duration_seconds',
      help: 'Zoom API call latency by operation and outcome',
      labelNames: ['operation', 'outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20],
      registers: [registry],
    }),
    meetingOutcomes: new Counter({
      name: 'scheduler_meeting_outcomes_total',
      help: 'Meeting provisioning outcomes per schedule',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    schedulesWithoutCapacity: new Gauge({
      name: 'scheduler_schedules_without_capacity',
      help: 'Schedules inside the provisioning horizon that no eligible host could take at the last run',
      registers: [registry],
    }),
    zoomWebhookEvents: new Counter({
      name: 'scheduler_zoom_webhook_events_total',
      help: 'Zoom webhook events by event and outcome',
      labelNames: ['event', 'outcome'],
      registers: [registry],
    }),
  };
}
