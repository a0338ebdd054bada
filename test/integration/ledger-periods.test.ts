/**
 * Period dirty marks and the aggregation lock on DynamoDB Local: a run clears a period's dirty mark only
 * when no file was marked after the run looked, and two runs never hold the lock at once.
 */
import { CreateTableCommand } from "@aws-sdk/client-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { LedgerStore } from "../../lib/adapters/ledger-store.ts";
import { tableDefinition } from "../../lib/adapters/table.ts";
import { localClients, uniqueName } from "./helpers.ts";

describe("ledger periods and the aggregation lock", () => {
  const { ddb, dynamo } = localClients();
  const table = uniqueName("ledger");
  const ledger = new LedgerStore(ddb, table);

  beforeAll(async () => {
    await dynamo.send(new CreateTableCommand(tableDefinition(table)));
  });

  it("keeps a period dirty when a file is marked while a run is under way (regression)", async () => {
    // Period dirty since an early file; a run starts and reads the state.
    await ledger.markDirty(["2026-10"], "2026-11-01T00:00:00.000Z", "file-a");
    const seen = await ledger.getPeriod("2026-10");
    const startedAt = "2026-11-01T00:05:00.000Z";
    // A second file is accepted during the run (after the run listed the ledger).
    await ledger.markDirty(["2026-10"], "2026-11-01T00:06:00.000Z", "file-b");
    await ledger.markReported("2026-10", "run-1", startedAt, "2026-11-01T00:07:00.000Z", seen?.dirtyVersion);
    const after = await ledger.getPeriod("2026-10");
    expect(after?.dirtySince).toBe("2026-11-01T00:00:00.000Z");
    expect(after?.fileIds).toEqual(["file-a", "file-b"]);
    expect(after?.lastRunId).toBe("run-1");

    // The next run sees both files and clears the mark.
    const again = await ledger.getPeriod("2026-10");
    await ledger.markReported("2026-10", "run-2", "2026-11-01T00:08:00.000Z", "x", again?.dirtyVersion);
    expect((await ledger.getPeriod("2026-10"))?.dirtySince).toBeNull();
    expect((await ledger.listPeriods()).find((p) => p.period === "2026-10")?.dirtySince).toBeNull();
  });

  it("without a seen version, a mark newer than the run's start keeps the period dirty", async () => {
    await ledger.markDirty(["2026-09"], "2026-11-01T00:00:00.000Z");
    await ledger.markDirty(["2026-09"], "2026-11-01T00:06:00.000Z");
    await ledger.markReported("2026-09", "run-1", "2026-11-01T00:05:00.000Z", "x");
    expect((await ledger.getPeriod("2026-09"))?.dirtySince).not.toBeNull();
    await ledger.markReported("2026-09", "run-2", "2026-11-01T00:07:00.000Z", "x");
    expect((await ledger.getPeriod("2026-09"))?.dirtySince).toBeNull();
  });

  it("the lock has one owner at a time, expires, and is released by its owner only", async () => {
    const t = Date.parse("2026-11-01T00:00:00Z");
    expect(await ledger.acquireAggregateLock("a", t, 60)).toBe(true);
    expect(await ledger.acquireAggregateLock("b", t + 1000, 60)).toBe(false);
    expect(await ledger.releaseAggregateLock("b")).toBe(false);
    expect(await ledger.acquireAggregateLock("b", t + 61_000, 60)).toBe(true); // a's lease expired
    expect(await ledger.releaseAggregateLock("a")).toBe(false);
    expect(await ledger.releaseAggregateLock("b")).toBe(true);
    expect(await ledger.acquireAggregateLock("a", t + 62_000, 60)).toBe(true);
    expect(await ledger.releaseAggregateLock("a")).toBe(true);
  });
});
