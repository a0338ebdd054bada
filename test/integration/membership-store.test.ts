import { CreateTableCommand, DeleteTableCommand, waitUntilTableExists } from "@aws-sdk/client-dynamodb";
import { PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMembershipStore } from "../../lib/adapters/membership-store.ts";
import { GSI1, tableDefinition } from "../../lib/adapters/table.ts";
import type { GroupMeta, Membership } from "../../lib/domain/membership.ts";
import { membership } from "../support/membership.ts";
import { type LocalClients, localClients, uniqueName } from "./helpers.ts";

/** The DynamoDB membership store against DynamoDB Local, on a table created from tableDefinition(). */

let clients: LocalClients;
let table: string;

const m = membership;

function meta(groupId: string, extra: Partial<GroupMeta> = {}): GroupMeta {
  return {
    groupId,
    externalId: null,
    name: `group ${groupId}`,
    status: "ACTIVE",
    programs: [{ programId: "9007199254740995", loyaltyPoints: "12345.678", currentSlab: null }],
    syncedAt: "2024-01-02T00:00:00.000Z",
    ...extra,
  };
}

beforeAll(async () => {
  clients = localClients();
  table = uniqueName("memberships");
  await clients.dynamo.send(new CreateTableCommand(tableDefinition(table)));
  await waitUntilTableExists({ client: clients.dynamo, maxWaitTime: 60 }, { TableName: table });
});

afterAll(async () => {
  await clients.dynamo.send(new DeleteTableCommand({ TableName: table })).catch(() => undefined);
  clients.dynamo.destroy();
});

describe("membership store on DynamoDB Local", () => {
  it("writes one item per membership (duplicates: last wins) and reads a big group back across pages", async () => {
    const store = createMembershipStore(clients.ddb, table);
    // 1500 items of ~1 KB (a long stint history): more than one 1 MB Query page.
    const stints = Array.from({ length: 12 }, (_, i) => ({
      joinedOn: `2023-${String(i + 1).padStart(2, "0")}-01`,
      exitSeenAt: `2023-${String(i + 1).padStart(2, "0")}-20T10:00:00.000Z`,
    }));
    const big = Array.from({ length: 1500 }, (_, i) =>
      m("9007199254740993", `1234567890123456${String(i).padStart(4, "0")}`, { previousStints: stints }),
    );
    const dup = m("9007199254740993", "1234567890123456" + "0007", { role: "PRIMARY", primaryMember: true });
    expect(await store.putMemberships([...big, dup])).toBe(1500);

    const pages: number[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const r = await clients.ddb.send(
        new QueryCommand({
          TableName: table,
          KeyConditionExpression: "pk = :pk",
          ExpressionAttributeValues: { ":pk": "GROUP#9007199254740993" },
          Select: "COUNT",
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      pages.push(r.Count ?? 0);
      start = r.LastEvaluatedKey;
    } while (start);
    expect(pages.length).toBeGreaterThan(1); // the read below really had to follow LastEvaluatedKey

    const back = await store.getGroupMemberships("9007199254740993");
    expect(back).toHaveLength(1500);
    const byUser = new Map(back.map((x) => [x.userId, x]));
    expect(byUser.get("12345678901234560007")).toEqual(dup);
    expect(byUser.get("12345678901234561499")).toEqual(big[1499]);
  });

  it("membership items carry GSI1 keys: a member's groups are one index query", async () => {
    const store = createMembershipStore(clients.ddb, table);
    await store.putMemberships([
      m("101", "u-gsi"),
      m("102", "u-gsi", { active: false, exitSeenAt: "2024-02-01T00:00:00.000Z" }),
    ]);
    const r = await clients.ddb.send(
      new QueryCommand({
        TableName: table,
        IndexName: GSI1,
        KeyConditionExpression: "gsi1pk = :pk",
        ExpressionAttributeValues: { ":pk": "MEMBER#u-gsi" },
      }),
    );
    expect((r.Items ?? []).map((i) => i.gsi1sk).sort()).toEqual(["GROUP#101", "GROUP#102"]);
  });

  it("stores, reads and lists group metas; GONE and others alike", async () => {
    const store = createMembershipStore(clients.ddb, table);
    await store.putGroupMeta(meta("201"));
    await store.putGroupMeta(meta("202", { status: "GONE", programs: [] }));
    await store.putGroupMeta(meta("201", { name: "renamed" }));
    expect(await store.getGroupMeta("201")).toEqual(meta("201", { name: "renamed" }));
    expect(await store.getGroupMeta("999999")).toBeNull();
    const listed = await store.listGroupMetas();
    expect(listed.filter((g) => g.groupId === "201" || g.groupId === "202")).toEqual([
      meta("201", { name: "renamed" }),
      meta("202", { status: "GONE", programs: [] }),
    ]);
  });

  it("lists every membership of every group, and nothing else", async () => {
    const store = createMembershipStore(clients.ddb, table);
    await store.putMemberships([m("301", "a"), m("302", "b"), m("302", "c")]);
    await store.putGroupMeta(meta("301"));
    await clients.ddb.send(
      new PutCommand({
        TableName: table,
        Item: { pk: "FILE#x", sk: "LEDGER", gsi1pk: "LEDGER", gsi1sk: "x" },
      }),
    );
    await store.acquireSyncLock("run-list", 60);
    const seen: Membership[] = [];
    for await (const x of store.listAllMemberships()) seen.push(x);
    expect(
      seen
        .filter((x) => x.groupId === "301" || x.groupId === "302")
        .map((x) => `${x.groupId}/${x.userId}`)
        .sort(),
    ).toEqual(["301/a", "302/b", "302/c"]);
    // everything written by the earlier tests is there too, and only memberships
    expect(seen.length).toBe(1500 + 2 + 3);
    await store.releaseSyncLock("run-list");
  });

  it("the sync lock admits one run at a time and can be taken over once expired", async () => {
    let now = 1_800_000_000_000;
    const store = createMembershipStore(clients.ddb, table, { nowMs: () => now });
    expect(await store.acquireSyncLock("run-a", 60)).toBe(true);
    expect(await store.acquireSyncLock("run-b", 60)).toBe(false);
    expect(await store.releaseSyncLock("run-b")).toBe(false); // not its lock
    expect(await store.acquireSyncLock("run-b", 60)).toBe(false);
    now += 61_000;
    expect(await store.acquireSyncLock("run-b", 60)).toBe(true); // run-a's lock expired
    expect(await store.releaseSyncLock("run-a")).toBe(false);
    expect(await store.releaseSyncLock("run-b")).toBe(true);
    expect(await store.acquireSyncLock("run-c", 60)).toBe(true);
    // The holder renews its lock (heartbeat); the renewed expiry keeps others out past the first one.
    now += 50_000;
    expect(await store.acquireSyncLock("run-c", 60)).toBe(true);
    now += 30_000;
    expect(await store.acquireSyncLock("run-d", 60)).toBe(false);
    expect(await store.releaseSyncLock("run-c")).toBe(true);
  });

  it("rejects an item that does not validate, with a stable code", async () => {
    const store = createMembershipStore(clients.ddb, table);
    await clients.ddb.send(
      new PutCommand({
        TableName: table,
        Item: { pk: "GROUP#401", sk: "MEMBER#x", groupId: "401", userId: "x", active: "maybe" },
      }),
    );
    await expect(store.getGroupMemberships("401")).rejects.toMatchObject({ code: "DDB_INVALID_ITEM" });
  });
});
