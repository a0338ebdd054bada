import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { describe, expect, it } from "vitest";
import { METRIC, type MetricSink, recordAggregation, recordIngest, recordSync } from "../../lib/metrics.ts";

function sink(): MetricSink & { got: [string, string, number][] } {
  const got: [string, string, number][] = [];
  return { got, addMetric: (name, unit, value) => got.push([name, unit, value]) };
}
const values = (s: ReturnType<typeof sink>, name: string) =>
  s.got.filter(([n]) => n === name).map(([, , v]) => v);

describe("recordIngest", () => {
  it("sums rows over read files and counts files by outcome", () => {
    const s = sink();
    recordIngest(s, [
      { status: "COMMITTED", fileId: "a", rowsRead: 10, rowsAccepted: 8, rowsRejected: 2, periods: [] },
      { status: "REJECTED", fileId: "b", rowsRead: 0, rowsAccepted: 0, rowsRejected: 0, periods: [] },
      { status: "COMMITTED", fileId: "c", rowsRead: 5, rowsAccepted: 5, rowsRejected: 0, periods: [] },
      { status: "DUPLICATE", fileId: "d", reason: "seen" },
    ]);
    expect(values(s, METRIC.rowsRead)).toEqual([15]);
    expect(values(s, METRIC.rowsAccepted)).toEqual([13]);
    expect(values(s, METRIC.rowsRejected)).toEqual([2]);
    expect(values(s, METRIC.filesIngested)).toEqual([2]);
    expect(values(s, METRIC.filesRejected)).toEqual([1]);
    expect(values(s, METRIC.filesSkipped)).toEqual([1]);
    expect(s.got.every(([, unit]) => unit === MetricUnit.Count)).toBe(true);
  });
});

describe("recordAggregation", () => {
  const now = new Date("2026-03-01T12:00:00Z");
  const state = (period: string, dirtySince: string | null) => ({ period, dirtySince });
  const report = (period: string) => ({ period });

  it("reports the delay since the first waiting delivery of each published period", () => {
    const s = sink();
    recordAggregation(
      s,
      [state("2026-01", "2026-03-01T11:00:00Z"), state("2026-02", "2026-03-01T11:59:00Z")],
      [report("2026-01"), report("2026-02")],
      [state("2026-01", null), state("2026-02", null)],
      now,
    );
    expect(values(s, METRIC.reportsPublished)).toEqual([2]);
    expect(values(s, METRIC.reportDelay)).toEqual([3600, 60]);
    expect(values(s, METRIC.unreportedDeliveryAge)).toEqual([0]);
  });

  it("reports the age of the oldest delivery still waiting after the run", () => {
    const s = sink();
    recordAggregation(
      s,
      [state("2026-01", "2026-03-01T09:00:00Z"), state("2026-02", "2026-03-01T10:00:00Z")],
      [],
      [state("2026-01", "2026-03-01T09:00:00Z"), state("2026-02", "2026-03-01T10:00:00Z")],
      now,
    );
    expect(values(s, METRIC.reportsPublished)).toEqual([0]);
    expect(values(s, METRIC.reportDelay)).toEqual([]);
    expect(values(s, METRIC.unreportedDeliveryAge)).toEqual([3 * 3600]);
  });
});

describe("recordSync", () => {
  it("reports groups, memberships and the API requests and retries of this run only", () => {
    const s = sink();
    recordSync(
      s,
      { synced: 4, failed: ["7"], membershipsWritten: 30 },
      { requests: 25, retries: 3, throttled: 1 },
      { requests: 10, retries: 1, throttled: 0 },
    );
    expect(values(s, METRIC.syncGroupsSynced)).toEqual([4]);
    expect(values(s, METRIC.syncGroupsFailed)).toEqual([1]);
    expect(values(s, METRIC.syncMembershipsWritten)).toEqual([30]);
    expect(values(s, METRIC.capillaryRequests)).toEqual([15]);
    expect(values(s, METRIC.capillaryRetries)).toEqual([2]);
    expect(values(s, METRIC.capillaryThrottled)).toEqual([1]);
  });
});
