import { gzipSync } from "node:zlib";
import { CreateTableCommand, DeleteTableCommand, waitUntilTableExists } from "@aws-sdk/client-dynamodb";
import { CreateBucketCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type CapillarySimulator, startCapillarySimulator } from "../../infra/capillary-sim.ts";
import type { SimCredentials, SimGroup, SimMember, SimState } from "../../infra/sample/membership-types.ts";
import { createCapillaryApi } from "../../lib/adapters/capillary-api.ts";
import { createMembershipStore } from "../../lib/adapters/membership-store.ts";
import { S3Objects } from "../../lib/adapters/s3-objects.ts";
import { tableDefinition } from "../../lib/adapters/table.ts";
import type { CapillaryConfig } from "../../lib/config.ts";
import { discoverFromMembershipCsvs } from "../../lib/membership-csv.ts";
import type { MembershipStore } from "../../lib/ports/membership-store.ts";
import { type SyncDeps, type SyncLog, type SyncResult, syncGroups } from "../../lib/sync.ts";
import { type LocalClients, localClients, uniqueName } from "./helpers.ts";

/**
 * The sync use case end to end under faults: the real client against the simulator, the real store on
 * DynamoDB Local. Each test checks what was stored against the simulator's state, not just the counters.
 */

const credentials: SimCredentials = {
  oauth: { key: "res-key", secret: "res-secret-42" },
  basic: { username: "till.res", password: "res-pass" },
};

function member(groupId: string, i: number, active = true): SimMember {
  return {
    userId: `${groupId}${String(i).padStart(3, "0")}`,
    joinedOn: `2024-0${1 + (i % 9)}-1${i % 10}`,
    role: i === 0 ? "PRIMARY" : "SECONDARY",
    permissions: ["REDEEM"],
    primaryMember: i === 0,
    defaultGroup: i % 2 === 0,
    active,
    pointsContributed: "1.500",
  };
}

function group(id: string, n: number, extra: Partial<SimGroup> = {}): SimGroup {
  return {
    id,
    externalId: `EXT-${id}`,
    groupName: `Fleet ${id}`,
    groupStatus: "ACTIVE",
    maxGroupSize: 100,
    createdOn: "2023-05-01T10:00:00+05:30",
    lifeTimePurchases: "10.000",
    extendedFields: { region: Number(id) % 2 === 0 ? "north" : "south" },
    programs: [
      {
        programId: "9007199254740995",
        programTitle: "Fleet",
        loyaltyPoints: `${id}.125`,
        lifetimePoints: "1.000",
        redeemed: "0",
        expired: "0",
        currentSlab: "Gold",
        slabSNo: 2,
      },
    ],
    // every 4th member (not the primary) has left
    members: Array.from({ length: n }, (_, i) => member(id, i, i === 0 || i % 4 !== 3)),
    ...extra,
  };
}

const IDS = Array.from({ length: 12 }, (_, i) => String(3000 + i));
const makeState = (): SimState => ({ groups: IDS.map((id, i) => group(id, 3 + (i % 5))) });

let sim: CapillarySimulator;
let clients: LocalClients;
let table: string;
let store: MembershipStore;
let state: SimState;

function config(over: Partial<CapillaryConfig> = {}): CapillaryConfig {
  return {
    CAPILLARY_BASE_URL: sim.url,
    CAPILLARY_AUTH: "oauth",
    CAPILLARY_OAUTH_KEY: credentials.oauth.key,
    CAPILLARY_OAUTH_SECRET: credentials.oauth.secret,
    CAPILLARY_GROUP_IDS: [],
    CAPILLARY_GROUP_EXTERNAL_IDS: [],
    CAPILLARY_GROUP_SEARCH: [],
    CAPILLARY_RATE_PER_SECOND: 500,
    CAPILLARY_TIMEOUT_MS: 400,
    CAPILLARY_MAX_RETRIES: 3,
    CAPILLARY_PAGE_SIZE: 2,
    ...over,
  };
}

const quiet: SyncLog = { info: () => {}, warn: () => {} };

function deps(over: Partial<SyncDeps> = {}): SyncDeps {
  return { api: createCapillaryApi(config()), store, now: () => new Date(), log: quiet, ...over };
}

/** Every simulator group's members are stored exactly: active flags, join dates, roles; metas too. */
async function expectStoreMatches(groups: readonly SimGroup[]): Promise<void> {
  for (const g of groups) {
    const stored = new Map((await store.getGroupMemberships(g.id)).map((m) => [m.userId, m]));
    expect([...stored.keys()].sort(), `members of ${g.id}`).toEqual(g.members.map((m) => m.userId).sort());
    for (const m of g.members) {
      expect(stored.get(m.userId), `${g.id}/${m.userId}`).toMatchObject({
        active: m.active,
        joinedOn: m.joinedOn,
        role: m.role,
        primaryMember: m.primaryMember,
        defaultGroup: m.defaultGroup,
      });
    }
    expect(await store.getGroupMeta(g.id)).toMatchObject({
      status: g.groupStatus,
      programs: [{ loyaltyPoints: g.programs[0]?.loyaltyPoints, currentSlab: "Gold" }],
    });
  }
}

const byGroup = (id: string) => (q: URLSearchParams) => q.get("identifierValue") === id || q.get("id") === id;

beforeAll(() => {
  clients = localClients();
});

beforeEach(async () => {
  // A fresh simulator per test: faults left over by one test never reach the next.
  await sim?.stop();
  state = makeState();
  sim = await startCapillarySimulator({ state, credentials });
  table = uniqueName("sync-res");
  await clients.dynamo.send(new CreateTableCommand(tableDefinition(table)));
  await waitUntilTableExists({ client: clients.dynamo, maxWaitTime: 60 }, { TableName: table });
  store = createMembershipStore(clients.ddb, table);
});

afterAll(async () => {
  await sim?.stop();
  clients?.dynamo.destroy();
});

async function dropTable() {
  await clients.dynamo.send(new DeleteTableCommand({ TableName: table })).catch(() => undefined);
}

describe("sync under API faults (simulator + DynamoDB Local)", () => {
  it("429 with Retry-After, 503s, a timeout, an expired token and a member inserted between pages: the stored state is complete and correct", async () => {
    const before = sim.requests().length;
    const [g429, g503, gSlow, gToken, gInsert] = IDS as [string, string, string, string, string];
    sim.inject({
      kind: "status",
      path: "/v2/userGroup2/members",
      status: 429,
      retryAfter: "1",
      query: byGroup(g429),
    });
    sim.inject({ kind: "status", path: "/v2/userGroup2", status: 503, times: 2, query: byGroup(g503) });
    sim.inject({
      kind: "delay",
      path: "/v2/userGroup2/members",
      ms: 1_500,
      query: (q) => byGroup(gSlow)(q) && q.get("offset") === "2",
    });
    // The token expires while the group's member list is being read (after its first page).
    sim.inject({
      kind: "mutate",
      path: "/v2/userGroup2/members",
      query: (q) => byGroup(gToken)(q) && q.get("offset") === "0",
      mutate: () => sim.expireTokens(),
    });
    // A member joins at the front of the list between page 1 and page 2.
    const inserted = member(gInsert, 99);
    sim.inject({
      kind: "mutate",
      path: "/v2/userGroup2/members",
      query: (q) => byGroup(gInsert)(q) && q.get("offset") === "0",
      mutate: (s) => {
        s.groups.find((g) => g.id === gInsert)?.members.unshift(inserted);
      },
    });

    const r = await syncGroups(deps(), { groupIds: IDS, externalIds: [], searches: [], concurrency: 3 });
    expect(r).toMatchObject({ complete: true, groups: 12, synced: 12, failed: [], lockSkipped: false });

    const log = sim.requests().slice(before);
    expect(log.filter((e) => e.status === 429)).toHaveLength(1);
    expect(log.filter((e) => e.status === 503)).toHaveLength(2);
    expect(log.filter((e) => e.fault === "delay")).toHaveLength(1);
    // Requests in flight with the expired token get 401; the client fetches a new token and retries them.
    expect(log.filter((e) => e.auth === "invalid" && e.status === 401).length).toBeGreaterThanOrEqual(1);
    expect(log.filter((e) => e.path === "/v3/oauth/token/generate").length).toBeGreaterThanOrEqual(2);

    expect(state.groups.find((g) => g.id === gInsert)?.members[0]?.userId).toBe(inserted.userId);
    await expectStoreMatches(state.groups);
    expect((await store.getGroupMemberships(gInsert)).some((m) => m.userId === inserted.userId)).toBe(true);
    await dropTable();
  });

  it("a group that keeps failing keeps its last state; a later run observes exits correctly", async () => {
    await syncGroups(deps(), { groupIds: IDS, externalIds: [], searches: [] });
    const target = IDS[4] as string;
    const other = IDS[3] as string;
    const frozen = await store.getGroupMemberships(target);

    for (const id of [target, other]) {
      const g = state.groups.find((x) => x.id === id);
      if (!g || g.members.length < 5) throw new Error("fixture");
      g.members = g.members.slice(0, 3); // the rest leave (no longer listed); still two pages of 2
    }
    sim.setState(state);
    // target's listing fails on page 2 every time (503 beyond the retry cap): never a partial observation.
    sim.inject({
      kind: "status",
      path: "/v2/userGroup2/members",
      status: 503,
      times: 100,
      query: (q) => byGroup(target)(q) && q.get("offset") !== "0",
    });
    const r = await syncGroups(deps(), { groupIds: IDS, externalIds: [], searches: [] });
    expect(r).toMatchObject({ complete: true, synced: 11, failed: [target] });
    expect(await store.getGroupMemberships(target)).toEqual(frozen);
    const otherNow = await store.getGroupMemberships(other);
    expect(otherNow.filter((m) => m.active).length).toBe(3);
    expect(otherNow.filter((m) => !m.active && m.exitSeenAt !== null).length).toBeGreaterThan(0);
    await expectStoreMatches(state.groups.filter((g) => g.id !== target && g.id !== other));
    await dropTable();
  });
});

describe("a run over several invocations (checkpoint in DynamoDB Local)", () => {
  it("resumes from the checkpoint; an invocation started meanwhile does no harm; the result is complete", async () => {
    const budget = { groups: 0, limit: 0 };
    const api = createCapillaryApi(config());
    const counting: SyncDeps["api"] = {
      getGroup: (ref) => {
        budget.groups++;
        return api.getGroup(ref);
      },
      listMembers: (id) => api.listMembers(id),
      searchGroups: (q) => api.searchGroups(q),
      extendedFieldSearch: (f) => api.extendedFieldSearch(f),
    };
    // An invocation "has time" for `limit` groups, then reports 1 s left (below the 5 s reserve).
    const invocation = (limit: number) => {
      budget.groups = 0;
      budget.limit = limit;
      return deps({ api: counting, remainingMs: () => (budget.groups < budget.limit ? 60_000 : 1_000) });
    };
    const opts = { groupIds: IDS, externalIds: [], searches: [], concurrency: 1, timeReserveMs: 5_000 };

    const first = await syncGroups(invocation(5), opts);
    expect(first).toMatchObject({ complete: false, groups: 5, remaining: 7 });
    const runItem = await clients.ddb.send(
      new GetCommand({ TableName: table, Key: { pk: "SYNC#RUN", sk: "RUN" }, ConsistentRead: true }),
    );
    expect(runItem.Item).toMatchObject({ runId: first.runId, status: "running", cursor: 5, total: 12 });

    // Another invocation while one is running: it holds the lock, so the second one does nothing.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slowApi: SyncDeps["api"] = {
      ...counting,
      getGroup: async (ref) => {
        await gate;
        return counting.getGroup(ref);
      },
    };
    budget.groups = 0;
    budget.limit = 4;
    const second = syncGroups(
      deps({ api: slowApi, remainingMs: () => (budget.groups < budget.limit ? 60_000 : 1_000) }),
      opts,
    );
    await new Promise((resolve) => setTimeout(resolve, 300)); // let it take the lock
    const intruder = await syncGroups(invocation(100), opts);
    expect(intruder).toMatchObject({ lockSkipped: true, groups: 0 });
    budget.groups = 0;
    budget.limit = 4;
    release();
    const secondResult = await second;
    expect(secondResult).toMatchObject({ resumed: true, runId: first.runId, groups: 4, complete: false });

    const results: SyncResult[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await syncGroups(invocation(2), opts);
      results.push(r);
      if (r.complete) break;
    }
    expect(results.map((r) => r.groups)).toEqual([2, 1]);
    expect(results.at(-1)).toMatchObject({ complete: true, runId: first.runId, remaining: 0 });
    expect(results.at(-1)?.run).toMatchObject({ synced: 12, failed: 0, invocations: 4, cursor: 12 });
    await expectStoreMatches(state.groups);
    await dropTable();
  });
});

describe("discovery from a Member Care CSV in S3 and extended field searches", () => {
  it("unions CSV ids (gzip too), extended field search results and configured ids, each group synced once", async () => {
    const bucket = uniqueName("sync-csv");
    await clients.s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const csv = `\uFEFFGroup Id,User Id,Role\r\n${IDS[0]},1,PRIMARY\r\n0${IDS[1]},2,SECONDARY\r\nNULL,3,SECONDARY\r\n`;
    await clients.s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: "membership/north.csv", Body: Buffer.from(csv) }),
    );
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: "membership/south.csv.gz",
        Body: gzipSync(`groupId,fleetUserId\n${IDS[2]},9\n`),
      }),
    );
    await clients.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: "exports/not-membership.csv",
        Body: `Group Id\n${IDS[11]}\n`,
      }),
    );
    const before = sim.requests().length;
    const objects = new S3Objects(clients.s3);
    const r = await syncGroups(
      deps({ extraGroupIds: () => discoverFromMembershipCsvs(objects, bucket, "membership/") }),
      {
        groupIds: [IDS[0] as string],
        externalIds: [],
        searches: [],
        extendedFieldSearches: [{ region: "north" }],
      },
    );
    const north = state.groups.filter((g) => g.extendedFields.region === "north").map((g) => g.id);
    expect(north).toHaveLength(6);
    const expected = [...new Set([IDS[0], IDS[1], IDS[2], ...north])].sort();
    expect(r).toMatchObject({ complete: true, failed: [], discoveryFailures: 0, groups: expected.length });
    const fetched = sim
      .requests()
      .slice(before)
      .filter((e) => e.path === "/v2/userGroup2")
      .map((e) => e.query.id);
    expect(fetched.sort()).toEqual(expected);
    expect(
      sim
        .requests()
        .slice(before)
        .filter((e) => e.path === "/v2/userGroup2/extendedFieldSearch"),
    ).toHaveLength(3); // 6 north groups, pages of 2
    await expectStoreMatches(state.groups.filter((g) => expected.includes(g.id)));
    await dropTable();
  });
});
