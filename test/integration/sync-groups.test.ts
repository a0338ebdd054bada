import { CreateTableCommand, DeleteTableCommand, waitUntilTableExists } from "@aws-sdk/client-dynamodb";
import type { ScheduledEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type CapillarySimulator, startCapillarySimulator } from "../../infra/capillary-sim.ts";
import { lambdaContext } from "../../infra/lambda-context.ts";
import type { SimCredentials, SimGroup, SimState } from "../../infra/sample/membership-types.ts";
import { LOCAL_CREDENTIALS } from "../../infra/stack.ts";
import { createMembershipStore } from "../../lib/adapters/membership-store.ts";
import { tableDefinition } from "../../lib/adapters/table.ts";
import { buildAttributionIndex } from "../../lib/domain/attribution.ts";
import type { Membership } from "../../lib/domain/membership.ts";
import type { MembershipStore } from "../../lib/ports/membership-store.ts";
import { type LocalClients, localClients, uniqueName } from "./helpers.ts";

/**
 * functions/sync-groups end to end: the handler module imported with env set (cold start wiring), the real
 * Capillary client against the simulator, the real store against DynamoDB Local.
 */

const BIG = "9007199254740993";
const credentials: SimCredentials = {
  oauth: { key: "sync-key", secret: "sync-secret-123" },
  basic: { username: "till.sync", password: "sync-pass" },
};

function group(id: string, name: string, userIds: string[], extra: Partial<SimGroup> = {}): SimGroup {
  return {
    id,
    externalId: null,
    groupName: name,
    groupStatus: "ACTIVE",
    maxGroupSize: 50,
    createdOn: "2023-05-01T10:00:00+05:30",
    lifeTimePurchases: "100.000",
    extendedFields: {},
    programs: [
      {
        programId: "9007199254740995",
        programTitle: "Fleet",
        loyaltyPoints: "12345.678",
        lifetimePoints: "99999.001",
        redeemed: "0",
        expired: "0",
        currentSlab: "Gold",
        slabSNo: 3,
      },
    ],
    members: userIds.map((userId, i) => ({
      userId,
      joinedOn: "2024-01-10",
      role: i === 0 ? "PRIMARY" : "SECONDARY",
      permissions: ["REDEEM"],
      primaryMember: i === 0,
      defaultGroup: false,
      active: true,
      pointsContributed: "1.000",
    })),
    ...extra,
  };
}

function state(): SimState {
  return {
    groups: [
      group(BIG, "Big Fleet Logistics", ["1234567890123456789", "1234567890123456790"]),
      group("4242", "Acme Fleet", ["42001", "42002", "42003", "42004"], { externalId: "EXT-4242" }),
      group("1237", "acme west", ["12371"]),
      group("7001", "Patel Transport", ["70011", "70012"]),
    ],
  };
}

const event: ScheduledEvent = {
  version: "0",
  id: "evt",
  "detail-type": "Scheduled Event",
  source: "aws.events",
  account: "000000000000",
  time: "2024-02-01T00:00:00Z",
  region: "us-east-1",
  resources: [],
  detail: {},
};

let sim: CapillarySimulator;
let clients: LocalClients;
let table: string;
let store: MembershipStore;
let handler: (e: ScheduledEvent, c: ReturnType<typeof lambdaContext>) => Promise<unknown>;
const saved = { ...process.env };
const logged: string[] = [];

async function memberships(groupId: string): Promise<Map<string, Membership>> {
  return new Map((await store.getGroupMemberships(groupId)).map((m) => [m.userId, m]));
}

beforeAll(async () => {
  sim = await startCapillarySimulator({ state: state(), credentials });
  clients = localClients();
  table = uniqueName("sync-groups");
  await clients.dynamo.send(new CreateTableCommand(tableDefinition(table)));
  await waitUntilTableExists({ client: clients.dynamo, maxWaitTime: 60 }, { TableName: table });
  store = createMembershipStore(clients.ddb, table);

  Object.assign(process.env, {
    AWS_REGION: clients.stack.region,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    DYNAMODB_ENDPOINT: clients.stack.dynamoEndpoint,
    S3_ENDPOINT: clients.stack.s3Endpoint,
    EXPORTS_BUCKET: "unused-exports",
    REPORTS_BUCKET: "unused-reports",
    TABLE_NAME: table,
    CAPILLARY_BASE_URL: sim.url,
    CAPILLARY_AUTH: "oauth",
    CAPILLARY_OAUTH_KEY: credentials.oauth.key,
    CAPILLARY_OAUTH_SECRET: credentials.oauth.secret,
    CAPILLARY_GROUP_IDS: `${BIG},7001`,
    CAPILLARY_GROUP_EXTERNAL_IDS: "EXT-4242",
    CAPILLARY_GROUP_SEARCH: "acme",
    CAPILLARY_RATE_PER_SECOND: "200",
    CAPILLARY_MAX_RETRIES: "1",
    CAPILLARY_TIMEOUT_MS: "2000",
    CAPILLARY_PAGE_SIZE: "2",
    POWERTOOLS_LOG_LEVEL: "INFO",
  });
  // Powertools writes INFO to stdout and WARN/ERROR to stderr: capture both.
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
      logged.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
      return true;
    });
  }
  vi.resetModules();
  const mod = await import("../../functions/sync-groups.ts");
  handler = mod.handler;
});

afterAll(async () => {
  vi.restoreAllMocks();
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
  Object.assign(process.env, saved);
  await sim?.stop();
  await clients?.dynamo.send(new DeleteTableCommand({ TableName: table })).catch(() => undefined);
  clients?.dynamo.destroy();
});

describe("sync-groups handler (simulator + DynamoDB Local)", () => {
  it("first run: discovers configured ids, external ids and searches, writes memberships and metas", async () => {
    const r = await handler(event, lambdaContext("sync-groups"));
    expect(r).toMatchObject({
      groups: 4,
      synced: 4,
      failed: [],
      membershipsWritten: 9,
      exitsObserved: 0,
      lockSkipped: false,
    });
    const big = await memberships(BIG);
    expect([...big.keys()].sort()).toEqual(["1234567890123456789", "1234567890123456790"]);
    expect(big.get("1234567890123456789")).toMatchObject({
      active: true,
      role: "PRIMARY",
      joinedOn: "2024-01-10",
    });
    expect(await store.getGroupMeta(BIG)).toMatchObject({
      status: "ACTIVE",
      programs: [{ programId: "9007199254740995", loyaltyPoints: "12345.678", currentSlab: "Gold" }],
    });
    expect((await store.listGroupMetas()).map((g) => g.groupId).sort()).toEqual(
      ["1237", "4242", "7001", BIG].sort(),
    );
  });

  it("second run: exits observed, a gone group, a failing group keeps its state; the run still succeeds", async () => {
    const next = state();
    const acme = next.groups.find((g) => g.id === "4242");
    const m2 = acme?.members.find((m) => m.userId === "42002");
    if (!acme || !m2) throw new Error("fixture");
    m2.active = false; // left: listed with active:false
    acme.members = acme.members.filter((m) => m.userId !== "42003"); // no longer returned at all
    next.groups = next.groups.filter((g) => g.id !== "7001"); // gone: 1632
    const big = next.groups.find((g) => g.id === BIG);
    if (!big) throw new Error("fixture");
    big.members = big.members.slice(0, 1); // would exit one member, but the listing fails:
    sim.setState(next);
    sim.inject({
      kind: "status",
      path: "/v2/userGroup2/members",
      status: 503,
      times: 2, // the first attempt and the client's one retry
      query: (q) => q.get("identifierValue") === BIG,
    });
    const bigBefore = await memberships(BIG);

    const r = await handler(event, lambdaContext("sync-groups"));
    expect(r).toMatchObject({ groups: 4, synced: 3, gone: 1, failed: [BIG], exitsObserved: 4 });

    const acmeNow = await memberships("4242");
    expect(acmeNow.get("42001")?.active).toBe(true);
    expect(acmeNow.get("42002")).toMatchObject({ active: false, exitSeenAt: expect.any(String) });
    expect(acmeNow.get("42003")).toMatchObject({ active: false, exitSeenAt: expect.any(String) });
    expect(await store.getGroupMeta("7001")).toMatchObject({ status: "GONE", name: "Patel Transport" });
    expect([...(await memberships("7001")).values()].every((m) => !m.active && m.exitSeenAt !== null)).toBe(
      true,
    );
    expect(await memberships(BIG)).toEqual(bigBefore);

    // The history attributes the exited member to the group before its exit date only.
    const all: Membership[] = [];
    for await (const m of store.listAllMemberships()) all.push(m);
    const exitDate = acmeNow.get("42002")?.exitSeenAt?.slice(0, 10) ?? "";
    const index = buildAttributionIndex(all, "UTC");
    expect(index.groupOf("42002", "2024-01-10")).toBe("4242");
    expect(index.groupOf("42002", exitDate)).toBeNull();
    expect(index.groupOf("42001", exitDate)).toBe("4242");
  });

  it("a second concurrent run does nothing and says so", async () => {
    sim.setState(state());
    const results = await Promise.all([
      handler(event, lambdaContext("sync-groups")),
      handler(event, lambdaContext("sync-groups")),
    ]);
    expect(results.filter((r) => (r as { lockSkipped: boolean }).lockSkipped)).toHaveLength(1);
    expect(results.filter((r) => (r as { synced: number }).synced === 4)).toHaveLength(1);
    expect(logged.join("")).toContain("another run holds the lock");
  });

  it("throws when every group fails, and changes nothing", async () => {
    const before = await memberships("4242");
    sim.inject({ kind: "status", path: "/v2/userGroup2", status: 503, times: 1000 });
    // getGroup fails for every group (the external id too); the search still finds 4242 and 1237.
    await expect(handler(event, lambdaContext("sync-groups"))).rejects.toMatchObject({
      code: "SYNC_ALL_GROUPS_FAILED",
    });
    expect(await memberships("4242")).toEqual(before);
  });

  it("logs hold ids and counts, never group names or credentials", () => {
    const text = logged.join("");
    expect(text).toContain('"groupId":"4242"');
    for (const secret of [
      "Acme Fleet",
      "acme west",
      "Patel Transport",
      "Big Fleet",
      credentials.oauth.secret,
    ]) {
      expect(text).not.toContain(secret);
    }
  });
});
