import { Counter, Histogram, type Registry } from 'prom-client';

export interface RecordingMetrics {
  /** Download attempts by outcome: stored, retry, failed. */
  downloads: Counter<'outcome'>;
  bytes: Counter;
  downloadSeconds: Histogram<'outcome'>;
  /** Sweep look-ups by outcome: found, none, error. */
  sweeps: Counter<'outcome'>;
}

export function createRecordingMetrics(registry: Registry): RecordingMetrics {
  return {
    downloads: new Counter({ name: 'scheduler_recording_downloads_total', help: 'Recording download attempts by outcome (stored, retry, failed)', labelNames: ['outcome'], registers: [registry] }),
    bytes: new Counter({ name: 'scheduler_recording_bytes_total', help: 'Recording bytes written to the store', registers: [registry] }),
    downloadSeconds: new Histogram({
      name: 'scheduler_recording_download_duration_seconds',
      help: 'Duration of one recording download attempt',
      labelNames: ['outcome'],
      buckets: [0.5, 1, 5, 15, 60, 300, 900, 1800, 3600],
      registers: [registry],
    }),
    sweeps: new Counter({ name: 'scheduler_recording_sweeps_total', help: 'Recording look-ups of ended meetings without recordings, by outcome (found, none, error)', labelNames: ['outcome'], registers: [registry] }),
  };
}
