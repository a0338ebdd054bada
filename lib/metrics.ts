import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { PublishedReport } from "./aggregate.ts";
import type { IngestOutcome } from "./ingest.ts";

/**
 * CloudWatch metrics (Powertools, Embedded Metric Format on stdout, flushed by the `logMetrics` middleware).
 * Namespace POWERTOOLS_METRICS_NAMESPACE, dimension `service` = POWERTOOLS_SERVICE_NAME: serverless.yml
 * sets both and its alarms use the same names. Outside Lambda (tests, demo, CLI) metrics are off unless
 * POWERTOOLS_METRICS_DISABLED says otherwise, so local runs do not print EMF documents.
 */
if (
  process.env.AWS_LAMBDA_FUNCTION_NAME === undefined &&
  process.env.POWERTOOLS_METRICS_DISABLED === undefined
) {
  process.env.POWERTOOLS_METRICS_DISABLED = "true";
}

export const metrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? "GroupLoyaltyReports",
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "group-loyalty-reports",
});

/** Metric names used by serverless.yml alarms: keep in step. */
export const METRIC = {
  filesIngested: "FilesIngested",
  filesRejected: "FilesRejected",
  filesSkipped: "FilesSkipped",
  rowsRead: "RowsRead",
  rowsAccepted: "RowsAccepted",
  rowsRejected: "RowsRejected",
  reportsPublished: "ReportsPublished",
  reportDelay: "ReportDelay",
  unreportedDeliveryAge: "UnreportedDeliveryAge",
  syncGroupsSynced: "SyncGroupsSynced",
  syncGroupsFailed: "SyncGroupsFailed",
  syncMembershipsWritten: "SyncMembershipsWritten",
  capillaryRequests: "CapillaryRequests",
  capillaryRetries: "CapillaryRetries",
  capillaryThrottled: "CapillaryThrottled",
} as const;

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];

/** What the recorders need of Metrics: the Powertools instance fits, and so does a test fake. */
export interface MetricSink {
  addMetric(name: string, unit: Unit, value: number): unknown;
}

/** Rows read / accepted / rejected and files by outcome, for one ingest invocation. */
export function recordIngest(sink: MetricSink, outcomes: readonly IngestOutcome[]): void {
  let committed = 0;
  let rejected = 0;
  let skipped = 0;
  let read = 0;
  let accepted = 0;
  let rejectedRows = 0;
  for (const o of outcomes) {
    if (o.status === "COMMITTED" || o.status === "REJECTED") {
      if (o.status === "COMMITTED") committed++;
      else rejected++;
      read += o.rowsRead;
      accepted += o.rowsAccepted;
      rejectedRows += o.rowsRejected;
    } else {
      skipped++;
    }
  }
  sink.addMetric(METRIC.filesIngested, MetricUnit.Count, committed);
  sink.addMetric(METRIC.filesRejected, MetricUnit.Count, rejected);
  sink.addMetric(METRIC.filesSkipped, MetricUnit.Count, skipped);
  sink.addMetric(METRIC.rowsRead, MetricUnit.Count, read);
  sink.addMetric(METRIC.rowsAccepted, MetricUnit.Count, accepted);
  sink.addMetric(METRIC.rowsRejected, MetricUnit.Count, rejectedRows);
}

/** What the aggregation metrics need of a period's state (PeriodState in the ledger). */
export interface PeriodMark {
  period: string;
  dirtySince: string | null;
}

function ageSeconds(since: string, now: Date): number | null {
  const t = Date.parse(since);
  return Number.isFinite(t) ? Math.max(0, Math.round((now.getTime() - t) / 1000)) : null;
}

/**
 * After an aggregation run: reports published; for each, the delay from the first delivery it waited for
 * (the period's dirty mark before the run) to its publication; and the age of the oldest delivery still not
 * in a published report (0 when every period is up to date), which the report-age alarm watches.
 */
export function recordAggregation(
  sink: MetricSink,
  before: readonly PeriodMark[],
  published: readonly Pick<PublishedReport, "period">[],
  after: readonly PeriodMark[],
  now: Date,
): void {
  sink.addMetric(METRIC.reportsPublished, MetricUnit.Count, published.length);
  const dirtyBefore = new Map(before.map((p) => [p.period, p.dirtySince]));
  for (const r of published) {
    const since = dirtyBefore.get(r.period);
    const delay = since ? ageSeconds(since, now) : null;
    if (delay !== null) sink.addMetric(METRIC.reportDelay, MetricUnit.Seconds, delay);
  }
  const pending = after.flatMap((p) => (p.dirtySince ? [ageSeconds(p.dirtySince, now) ?? 0] : []));
  sink.addMetric(METRIC.unreportedDeliveryAge, MetricUnit.Seconds, Math.max(0, ...pending));
}

/** The sync's outcome and what it cost at the Capillary API (counters since the previous call). */
export interface SyncFigures {
  synced: number;
  failed: readonly string[];
  membershipsWritten: number;
}
export interface ApiCounters {
  requests: number;
  retries: number;
  throttled: number;
}

export function recordSync(
  sink: MetricSink,
  result: SyncFigures,
  api: ApiCounters,
  previous: ApiCounters = { requests: 0, retries: 0, throttled: 0 },
): void {
  sink.addMetric(METRIC.syncGroupsSynced, MetricUnit.Count, result.synced);
  sink.addMetric(METRIC.syncGroupsFailed, MetricUnit.Count, result.failed.length);
  sink.addMetric(METRIC.syncMembershipsWritten, MetricUnit.Count, result.membershipsWritten);
  sink.addMetric(METRIC.capillaryRequests, MetricUnit.Count, api.requests - previous.requests);
  sink.addMetric(METRIC.capillaryRetries, MetricUnit.Count, api.retries - previous.retries);
  sink.addMetric(METRIC.capillaryThrottled, MetricUnit.Count, api.throttled - previous.throttled);
}
