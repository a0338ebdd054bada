import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import type { PeriodState } from "../../lib/adapters/ledger-store.ts";
import { type AggregateDeps, expiredRuns, runAggregation, runIdTime } from "../../lib/aggregate.ts";
import { sqsSignal } from "../../lib/aggregate-trigger.ts";
import { ZonedCalendar } from "../../lib/domain/dates.ts";
import type { IngestOutcome } from "../../lib/ingest.ts";

const silent = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
};

describe("ingestion signals the aggregation once per invocation", () => {
  it("sends one message naming the committed files and periods, none when nothing committed", async () => {
    const sqs = mockClient(SQSClient);
    sqs.on(SendMessageCommand).resolves({ MessageId: "m1" });
    const signal = sqsSignal(new SQSClient({ region: "us-east-1" }), "https://sqs.local/q", silent as never);
    const outcomes: IngestOutcome[] = [
      {
        status: "COMMITTED",
        fileId: "f1",
        rowsRead: 2,
        rowsAccepted: 2,
        rowsRejected: 0,
        periods: ["2026-10"],
      },
      { status: "DUPLICATE", fileId: "f0", reason: "already COMMITTED" },
      {
        status: "COMMITTED",
        fileId: "f2",
        rowsRead: 1,
        rowsAccepted: 1,
        rowsRejected: 0,
        periods: ["2026-09", "2026-10"],
      },
    ];
    expect(await signal.afterIngest(outcomes)).toBe(true);
    const calls = sqs.commandCalls(SendMessageCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.args[0].input.QueueUrl).toBe("https://sqs.local/q");
    expect(JSON.parse(calls[0]?.args[0].input.MessageBody ?? "")).toEqual({
      reason: "ingested",
      fileIds: ["f1", "f2"],
      periods: ["2026-09", "2026-10"],
    });
    expect(await signal.afterIngest([outcomes[1] as IngestOutcome])).toBe(false);
    expect(sqs.commandCalls(SendMessageCommand)).toHaveLength(1);
    sqs.restore();
  });
});

describe("report run retention", () => {
  const day = 86_400_000;
  const id = (iso: string, r = "aaaaaa") => `${iso.replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}-${r}`;
  it("parses run ids", () => {
    expect(runIdTime(id("2026-10-01T10:00:00.000Z"))).toBe(Date.parse("2026-10-01T10:00:00Z"));
    expect(runIdTime("garbage")).toBeNull();
  });
  it("deletes runs superseded longer ago than the retention, never the pinned or newest one", () => {
    const now = Date.parse("2026-12-01T00:00:00Z");
    const r1 = id("2026-10-01T00:00:00.000Z");
    const r2 = id("2026-10-05T00:00:00.000Z"); // supersedes r1 58 days ago
    const r3 = id("2026-11-25T00:00:00.000Z"); // supersedes r2 6 days ago
    const r4 = id("2026-11-30T00:00:00.000Z");
    expect(expiredRuns([r4, r2, r1, r3], new Set([r4]), now, 30)).toEqual([r1]);
    expect(expiredRuns([r4, r2, r1, r3], new Set([r1, r4]), now, 30)).toEqual([]);
    expect(expiredRuns([r4, r2, r1, r3], new Set([r4]), now, 5)).toEqual([r1, r2]);
    expect(expiredRuns([r1], new Set(), now + 1000 * day, 1)).toEqual([]);
  });
});

/** An in-memory ledger with the lock semantics of LedgerStore. */
function fakeLedger() {
  const periods = new Map<string, PeriodState>();
  let lock: { owner: string; expiresAt: number } | null = null;
  const events: string[] = [];
  return {
    periods,
    events,
    async get() {
      return null;
    },
    async list() {
      return [];
    },
    async listPeriods() {
      return [...periods.values()];
    },
    async getPeriod(p: string) {
      return periods.get(p) ?? null;
    },
    async markReported(p: string, _r: string, _s: string, _a: string, seen?: number) {
      const st = periods.get(p);
      events.push(`reported ${p}`);
      if (st && (st.dirtyVersion ?? 0) === seen) st.dirtySince = null;
    },
    async acquireAggregateLock(owner: string, nowMs: number, ttl: number) {
      if (lock && lock.owner !== owner && lock.expiresAt >= nowMs / 1000) return false;
      lock = { owner, expiresAt: nowMs / 1000 + ttl };
      return true;
    },
    async releaseAggregateLock(owner: string) {
      if (lock?.owner !== owner) return false;
      lock = null;
      events.push(`released ${owner}`);
      return true;
    },
    mark(p: string) {
      const st = periods.get(p) ?? { period: p, dirtySince: null, lastRunId: null, lastReportAt: null };
      st.dirtySince ??= "2026-11-01T00:00:00Z";
      st.dirtyVersion = (st.dirtyVersion ?? 0) + 1;
      periods.set(p, st);
    },
  };
}

function deps(ledger: ReturnType<typeof fakeLedger>, onList?: () => void): AggregateDeps {
  return {
    objects: {
      get: async () => {
        throw new Error("no staged objects in this test");
      },
      getText: async () => null,
      put: async () => undefined,
      list: async function* () {},
      delete: async () => undefined,
    },
    ledger,
    membership: {
      listGroupMetas: async () => {
        onList?.();
        return [];
      },
      listAllMemberships: async function* () {},
    },
    settings: {
      stagingBucket: "s",
      reportsBucket: "r",
      partitions: 1,
      calendar: new ZonedCalendar("UTC"),
    },
    now: () => new Date("2026-11-02T00:00:00Z"),
    log: silent as never,
  };
}

describe("runAggregation", () => {
  it("refuses to run while another run holds the lock", async () => {
    const ledger = fakeLedger();
    ledger.mark("2026-10");
    expect(await ledger.acquireAggregateLock("other", Date.parse("2026-11-02T00:00:00Z"), 60)).toBe(true);
    const out = await runAggregation(deps(ledger), { dirty: true });
    expect(out).toEqual({ status: "busy", published: [], rounds: 0 });
    expect(ledger.periods.get("2026-10")?.dirtySince).not.toBeNull();
  });

  it("repeats while a period was marked again during the run, then clears it", async () => {
    const ledger = fakeLedger();
    ledger.mark("2026-10");
    let calls = 0;
    // A file is accepted while the first round runs (after the period state was read).
    const out = await runAggregation(
      deps(ledger, () => {
        if (calls++ === 0) ledger.mark("2026-10");
      }),
      { dirty: true },
    );
    expect(out.rounds).toBe(2);
    expect(ledger.periods.get("2026-10")?.dirtySince).toBeNull();
    expect(ledger.events.filter((e) => e.startsWith("reported"))).toEqual([
      "reported 2026-10",
      "reported 2026-10",
    ]);
  });

  it("checks the dirty marks again after releasing the lock (a refused run relies on it)", async () => {
    const ledger = fakeLedger();
    ledger.mark("2026-10");
    let calls = 0;
    const d = deps(ledger);
    const release = ledger.releaseAggregateLock.bind(ledger);
    ledger.releaseAggregateLock = async (owner: string) => {
      const r = await release(owner);
      // Between the run's last look and its release, a file came and its signal was refused the lock.
      if (calls++ === 0) ledger.mark("2026-09");
      return r;
    };
    const out = await runAggregation(d, { dirty: true });
    expect(out.rounds).toBe(2);
    expect(ledger.periods.get("2026-09")?.dirtySince).toBeNull();
  });

  it("runs only the named periods on demand", async () => {
    const ledger = fakeLedger();
    ledger.mark("2026-10");
    const out = await runAggregation(deps(ledger), { periods: ["2026-08"] });
    expect(out.rounds).toBe(1);
    expect(ledger.periods.get("2026-10")?.dirtySince).not.toBeNull();
  });
});
