import { Counter, type Registry } from 'prom-client';

export interface MonitorMetrics {
  /** Booked-headcount checks by stage (provision, send) and verdict (ok, below_minimum, cancelled). */
  headcount: Counter<'stage' | 'state'>;
  /** Grace-time outcomes: ok, below_minimum, ended_empty, not_started, skipped, retry, error, lost, moved. */
  grace: Counter<'state'>;
}

export function createMonitorMetrics(registry: Registry): MonitorMetrics {
  return {
    headcount: new Counter({ name: 'scheduler_headcount_checks_total', help: 'Booked students against the class minimum, by check point and verdict', labelNames: ['stage', 'state'], registers: [registry] }),
    grace: new Counter({ name: 'scheduler_attendance_checks_total', help: 'Attendance checks at start + grace, by verdict', labelNames: ['state'], registers: [registry] }),
  };
}
