/**
 * The ledger's conditional write on DynamoDB Local (issue 8, concurrent deliveries of one object
 * version): a write `unlessCommitted` is refused once the entry is COMMITTED, and goes through otherwise.
 */
import { CreateTableCommand } from "@aws-sdk/client-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { type LedgerEntry, LedgerStore } from "../../lib/adapters/ledger-store.ts";
import { tableDefinition } from "../../lib/adapters/table.ts";
import { localClients, uniqueName } from "./helpers.ts";

const entry = (fileId: string, status: LedgerEntry["status"]): LedgerEntry => ({
  fileId,
  bucket: "b",
  sourceKey: "exports/points/a.csv",
  eTag: "e",
  size: 1,
  sequencer: "01",
  deliveredAt: "2026-11-01T00:00:00.000Z",
  status,
  reason: null,
  attempts: 1,
  entries: [],
  staged: [],
  periods: [],
  rejectsKey: null,
  startedAt: "2026-11-01T00:00:00.000Z",
  finishedAt: null,
});

describe("ledger put unlessCommitted", () => {
  const { ddb, dynamo } = localClients();
  const table = uniqueName("ledger-cond");
  const ledger = new LedgerStore(ddb, table);

  beforeAll(async () => {
    await dynamo.send(new CreateTableCommand(tableDefinition(table)));
  });

  it("writes a new or unfinished entry, refuses to overwrite a COMMITTED one", async () => {
    expect(await ledger.put(entry("f1", "PROCESSING"), { unlessCommitted: true })).toBe(true);
    expect(await ledger.put(entry("f1", "FAILED"), { unlessCommitted: true })).toBe(true);
    expect((await ledger.get("f1"))?.status).toBe("FAILED");
    expect(await ledger.put(entry("f1", "COMMITTED"))).toBe(true);
    expect(await ledger.put(entry("f1", "PROCESSING"), { unlessCommitted: true })).toBe(false);
    expect(await ledger.put(entry("f1", "FAILED"), { unlessCommitted: true })).toBe(false);
    expect((await ledger.get("f1"))?.status).toBe("COMMITTED");
  });
});
