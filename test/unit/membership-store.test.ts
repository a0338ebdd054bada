import { ConditionalCheckFailedException, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
} from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { createMembershipStore } from "../../lib/adapters/membership-store.ts";
import type { GroupMeta, Membership } from "../../lib/domain/membership.ts";
import { membership } from "../support/membership.ts";

const TABLE = "t-unit";
const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({ region: "us-east-1" }));
const mock = mockClient(DynamoDBDocumentClient);

const m = membership;

const meta: GroupMeta = {
  groupId: "42",
  externalId: "EXT-42",
  name: "Group forty-two",
  status: "ACTIVE",
  programs: [{ programId: "1", loyaltyPoints: "120.500", currentSlab: "Gold" }],
  syncedAt: "2024-01-02T00:00:00.000Z",
};

function item(x: Membership): Record<string, unknown> {
  return {
    pk: `GROUP#${x.groupId}`,
    sk: `MEMBER#${x.userId}`,
    gsi1pk: `MEMBER#${x.userId}`,
    gsi1sk: `GROUP#${x.groupId}`,
    type: "MEMBERSHIP",
    ...x,
  };
}

function putItems(call: number): Record<string, unknown>[] {
  const input = mock.commandCalls(BatchWriteCommand)[call]?.args[0].input;
  return (input?.RequestItems?.[TABLE] ?? []).map((r) => r.PutRequest?.Item ?? {});
}

interface Recorder {
  delays: number[];
  sleep: (ms: number) => Promise<void>;
}

function recorder(): Recorder {
  const delays: number[] = [];
  return { delays, sleep: async (ms) => void delays.push(ms) };
}

beforeEach(() => {
  mock.reset();
});

describe("getGroupMemberships", () => {
  it("queries the group partition for MEMBER# items and follows LastEvaluatedKey to the end", async () => {
    mock
      .on(QueryCommand)
      .resolvesOnce({
        Items: [item(m("42", "1")), item(m("42", "2"))],
        LastEvaluatedKey: { pk: "GROUP#42", sk: "MEMBER#2" },
      })
      .resolvesOnce({ Items: [item(m("42", "3"))], LastEvaluatedKey: { pk: "GROUP#42", sk: "MEMBER#3" } })
      .resolvesOnce({ Items: [item(m("42", "4"))] });
    const store = createMembershipStore(ddb, TABLE);
    const out = await store.getGroupMemberships("42");
    expect(out.map((x) => x.userId)).toEqual(["1", "2", "3", "4"]);
    expect(out[0]).toEqual(m("42", "1"));
    const calls = mock.commandCalls(QueryCommand);
    expect(calls).toHaveLength(3);
    expect(calls[0]?.args[0].input).toMatchObject({
      TableName: TABLE,
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :sk)",
      ExpressionAttributeValues: { ":pk": "GROUP#42", ":sk": "MEMBER#" },
      ConsistentRead: true,
    });
    expect(calls[1]?.args[0].input.ExclusiveStartKey).toEqual({ pk: "GROUP#42", sk: "MEMBER#2" });
    expect(calls[2]?.args[0].input.ExclusiveStartKey).toEqual({ pk: "GROUP#42", sk: "MEMBER#3" });
  });

  it("rejects an invalid item with a stable code and without echoing its values", async () => {
    mock
      .on(QueryCommand)
      .resolves({ Items: [{ ...item(m("42", "1")), active: "yes", role: "Alice Smith" }] });
    const store = createMembershipStore(ddb, TABLE);
    const err = await store.getGroupMemberships("42").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "DDB_INVALID_ITEM" });
    expect(String(err)).toContain("active");
    expect(String(err)).not.toContain("yes");
  });
});

describe("putMemberships", () => {
  it("writes batches of 25 items carrying the table and GSI1 keys", async () => {
    mock.on(BatchWriteCommand).resolves({});
    const store = createMembershipStore(ddb, TABLE);
    const items = Array.from({ length: 60 }, (_, i) => m("42", String(i)));
    expect(await store.putMemberships(items)).toBe(60);
    const calls = mock.commandCalls(BatchWriteCommand);
    expect(calls.map((c) => c.args[0].input.RequestItems?.[TABLE]?.length)).toEqual([25, 25, 10]);
    expect(putItems(0)[0]).toEqual(item(m("42", "0")));
  });

  it("removes duplicate keys before batching, the last occurrence wins", async () => {
    mock.on(BatchWriteCommand).resolves({});
    const store = createMembershipStore(ddb, TABLE);
    const items = [
      m("42", "1", { role: "OLD" }),
      m("42", "2"),
      m("43", "1"),
      m("42", "1", { role: "NEW" }),
      ...Array.from({ length: 24 }, (_, i) => m("42", `x${i}`)),
    ];
    expect(await store.putMemberships(items)).toBe(27);
    const written = [...putItems(0), ...putItems(1)];
    expect(written).toHaveLength(27);
    const keysWritten = written.map((w) => `${String(w.pk)}|${String(w.sk)}`);
    expect(new Set(keysWritten).size).toBe(27);
    expect(written.filter((w) => w.pk === "GROUP#42" && w.sk === "MEMBER#1")).toEqual([
      item(m("42", "1", { role: "NEW" })),
    ]);
  });

  it("keeps at most writeConcurrency batches in flight, and more than one", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    mock.on(BatchWriteCommand).callsFake(async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 2));
      inFlight--;
      return {};
    });
    const store = createMembershipStore(ddb, TABLE, { writeConcurrency: 3 });
    const items = Array.from({ length: 250 }, (_, i) => m("42", String(i)));
    expect(await store.putMemberships(items)).toBe(250);
    expect(mock.commandCalls(BatchWriteCommand)).toHaveLength(10);
    expect(maxInFlight).toBe(3);
  });

  it("writes nothing for an empty list", async () => {
    const store = createMembershipStore(ddb, TABLE);
    expect(await store.putMemberships([])).toBe(0);
    expect(mock.commandCalls(BatchWriteCommand)).toHaveLength(0);
  });

  it("retries UnprocessedItems (only those) with growing, jittered, capped delays", async () => {
    const items = Array.from({ length: 5 }, (_, i) => m("42", String(i)));
    const unprocessed = (ids: string[]) => ({
      UnprocessedItems: { [TABLE]: ids.map((id) => ({ PutRequest: { Item: item(m("42", id)) } })) },
    });
    mock
      .on(BatchWriteCommand)
      .resolvesOnce(unprocessed(["1", "3"]))
      .resolvesOnce(unprocessed(["3"]))
      .resolvesOnce(unprocessed(["3"]))
      .resolvesOnce(unprocessed(["3"]))
      .resolvesOnce({});
    const rec = recorder();
    const store = createMembershipStore(ddb, TABLE, {
      sleep: rec.sleep,
      random: () => 0.5,
      baseDelayMs: 100,
      maxDelayMs: 300,
    });
    expect(await store.putMemberships(items)).toBe(5);
    expect(putItems(0)).toHaveLength(5);
    expect(putItems(1).map((w) => w.userId)).toEqual(["1", "3"]);
    expect(putItems(2).map((w) => w.userId)).toEqual(["3"]);
    expect(mock.commandCalls(BatchWriteCommand)).toHaveLength(5);
    // 0.5 * min(300, 100 * 2^n): 50, 100, 150 (capped), 150
    expect(rec.delays).toEqual([50, 100, 150, 150]);
  });

  it("gives up after maxAttempts with code DDB_UNPROCESSED_ITEMS", async () => {
    mock.on(BatchWriteCommand).resolves({
      UnprocessedItems: { [TABLE]: [{ PutRequest: { Item: item(m("42", "1")) } }] },
    });
    const rec = recorder();
    const store = createMembershipStore(ddb, TABLE, { sleep: rec.sleep, maxAttempts: 3 });
    await expect(store.putMemberships([m("42", "1")])).rejects.toMatchObject({
      code: "DDB_UNPROCESSED_ITEMS",
    });
    expect(mock.commandCalls(BatchWriteCommand)).toHaveLength(3);
    expect(rec.delays).toHaveLength(2);
  });

  it("jitter stays within [0, min(cap, base * 2^n)]", async () => {
    const rec = recorder();
    mock
      .on(BatchWriteCommand)
      .resolvesOnce({ UnprocessedItems: { [TABLE]: [{ PutRequest: { Item: item(m("42", "1")) } }] } })
      .resolvesOnce({});
    const store = createMembershipStore(ddb, TABLE, {
      sleep: rec.sleep,
      random: () => 0.999,
      baseDelayMs: 50,
    });
    await store.putMemberships([m("42", "1")]);
    expect(rec.delays[0]).toBeGreaterThan(0);
    expect(rec.delays[0]).toBeLessThan(50);
  });
});

describe("group metas", () => {
  it("puts a meta with GSI1 GROUPS keys and reads it back validated", async () => {
    mock.on(PutCommand).resolves({});
    mock
      .on(GetCommand)
      .resolves({ Item: { pk: "GROUP#42", sk: "META", gsi1pk: "GROUPS", gsi1sk: "42", ...meta } });
    const store = createMembershipStore(ddb, TABLE);
    await store.putGroupMeta(meta);
    expect(mock.commandCalls(PutCommand)[0]?.args[0].input.Item).toEqual({
      pk: "GROUP#42",
      sk: "META",
      gsi1pk: "GROUPS",
      gsi1sk: "42",
      type: "GROUP",
      ...meta,
    });
    expect(await store.getGroupMeta("42")).toEqual(meta);
  });

  it("getGroupMeta answers null for an unknown group", async () => {
    mock.on(GetCommand).resolves({});
    expect(await createMembershipStore(ddb, TABLE).getGroupMeta("1")).toBeNull();
  });

  it("listGroupMetas queries GSI1 and follows LastEvaluatedKey", async () => {
    mock
      .on(QueryCommand)
      .resolvesOnce({ Items: [{ ...meta }], LastEvaluatedKey: { k: "1" } })
      .resolvesOnce({ Items: [{ ...meta, groupId: "43" }] });
    const out = await createMembershipStore(ddb, TABLE).listGroupMetas();
    expect(out.map((g) => g.groupId)).toEqual(["42", "43"]);
    const calls = mock.commandCalls(QueryCommand);
    expect(calls[0]?.args[0].input).toMatchObject({
      IndexName: "GSI1",
      ExpressionAttributeValues: { ":pk": "GROUPS" },
    });
    expect(calls[1]?.args[0].input.ExclusiveStartKey).toEqual({ k: "1" });
  });
});

describe("listAllMemberships", () => {
  it("scans membership items only, following LastEvaluatedKey", async () => {
    mock
      .on(ScanCommand)
      .resolvesOnce({ Items: [item(m("1", "a"))], LastEvaluatedKey: { k: "1" } })
      .resolvesOnce({ Items: [], LastEvaluatedKey: { k: "2" } })
      .resolvesOnce({ Items: [item(m("2", "b")), item(m("2", "c"))] });
    const seen: string[] = [];
    for await (const x of createMembershipStore(ddb, TABLE).listAllMemberships())
      seen.push(`${x.groupId}/${x.userId}`);
    expect(seen).toEqual(["1/a", "2/b", "2/c"]);
    const calls = mock.commandCalls(ScanCommand);
    expect(calls).toHaveLength(3);
    expect(calls[0]?.args[0].input).toMatchObject({
      FilterExpression: "begins_with(pk, :pk) AND begins_with(sk, :sk)",
      ExpressionAttributeValues: { ":pk": "GROUP#", ":sk": "MEMBER#" },
    });
    expect(calls[2]?.args[0].input.ExclusiveStartKey).toEqual({ k: "2" });
  });
});

describe("sync lock", () => {
  const conditionFailed = () => new ConditionalCheckFailedException({ message: "failed", $metadata: {} });

  it("acquires with a conditional put that lets an expired lock be taken over", async () => {
    mock.on(PutCommand).resolves({});
    const store = createMembershipStore(ddb, TABLE, { nowMs: () => 1_700_000_000_500 });
    expect(await store.acquireSyncLock("run-1", 900)).toBe(true);
    expect(mock.commandCalls(PutCommand)[0]?.args[0].input).toMatchObject({
      Item: { pk: "SYNC#LOCK", sk: "LOCK", runId: "run-1", expiresAt: 1_700_000_900 },
      ConditionExpression: "attribute_not_exists(pk) OR expiresAt < :now OR runId = :runId",
      ExpressionAttributeValues: { ":now": 1_700_000_000, ":runId": "run-1" },
    });
  });

  it("answers false when another run holds it, and rethrows other errors", async () => {
    mock.on(PutCommand).rejectsOnce(conditionFailed()).rejectsOnce(new Error("boom"));
    const store = createMembershipStore(ddb, TABLE);
    expect(await store.acquireSyncLock("run-2", 900)).toBe(false);
    await expect(store.acquireSyncLock("run-2", 900)).rejects.toThrow("boom");
  });

  it("releases only its own lock", async () => {
    mock.on(DeleteCommand).resolvesOnce({}).rejectsOnce(conditionFailed());
    const store = createMembershipStore(ddb, TABLE);
    expect(await store.releaseSyncLock("run-1")).toBe(true);
    expect(await store.releaseSyncLock("run-1")).toBe(false);
    expect(mock.commandCalls(DeleteCommand)[0]?.args[0].input).toMatchObject({
      Key: { pk: "SYNC#LOCK", sk: "LOCK" },
      ConditionExpression: "runId = :runId",
      ExpressionAttributeValues: { ":runId": "run-1" },
    });
  });
});
