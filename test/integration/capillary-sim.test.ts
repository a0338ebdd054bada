import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type CapillarySimulator, startCapillarySimulator } from "../../infra/capillary-sim.ts";
import type { SimCredentials, SimGroup, SimMember, SimState } from "../../infra/sample/membership-types.ts";
import { CapillaryApiError, createCapillaryApi } from "../../lib/adapters/capillary-api.ts";
import type { CapillaryConfig } from "../../lib/config.ts";
import type { CapillaryMember } from "../../lib/ports.ts";

/**
 * The real client against the real simulator on loopback (no global setup needed: the simulator is
 * started here). Big ids: group 9007199254740993 (2^53 + 1) and 19-digit user ids.
 */

const BIG_GROUP = "9007199254740993";
const BIG_PROGRAM = "9007199254740995";
const FIRST_USER = 1234567890123456789n;
const credentials: SimCredentials = {
  oauth: { key: "sim-key-abc", secret: "sim-secret-xyz-123" },
  basic: { username: "till.sim", password: "pa55-word-sim" },
};

function member(userId: string, i: number): SimMember {
  return {
    userId,
    joinedOn: `2024-0${1 + (i % 9)}-1${i % 10}`,
    role: i === 0 ? "PRIMARY" : "SECONDARY",
    permissions: i % 2 === 0 ? ["REDEEM", "VIEW"] : ["VIEW"],
    primaryMember: i === 0,
    defaultGroup: i % 3 === 0,
    // every 25th member (not the primary) has left the group
    active: i === 0 || i % 25 !== 0,
    pointsContributed: `${i}.250`,
  };
}

function group(id: string, name: string, n: number, externalId: string | null = null): SimGroup {
  return {
    id,
    externalId,
    groupName: name,
    groupStatus: "ACTIVE",
    maxGroupSize: 1000,
    createdOn: "2023-05-01T10:00:00+05:30",
    lifeTimePurchases: "98765.430",
    extendedFields: { region: id === BIG_GROUP ? "north" : "south" },
    programs: [
      {
        programId: BIG_PROGRAM,
        programTitle: "Fleet",
        loyaltyPoints: "12345.678",
        lifetimePoints: "99999.001",
        redeemed: "10.000",
        expired: "0",
        currentSlab: "Gold",
        slabSNo: 3,
      },
    ],
    members: Array.from({ length: n }, (_, i) => member(`${BigInt(id) * 1000n + BigInt(i)}`, i)),
  };
}

function makeState(): SimState {
  const big = group(BIG_GROUP, "Big Fleet", 250, "EXT-BIG");
  big.members = big.members.map((m, i) => ({ ...m, userId: String(FIRST_USER + BigInt(i)) }));
  const others = Array.from({ length: 23 }, (_, i) => group(String(5000 + i), `ACME depot ${i}`, 2));
  return {
    groups: [big, group("4242", "Acme Fleet", 3, "EXT-4242"), group("1237", "acme west", 4), ...others],
  };
}

let sim: CapillarySimulator;

function config(over: Partial<CapillaryConfig> = {}): CapillaryConfig {
  return {
    CAPILLARY_BASE_URL: sim.url,
    CAPILLARY_AUTH: "oauth",
    CAPILLARY_OAUTH_KEY: credentials.oauth.key,
    CAPILLARY_OAUTH_SECRET: credentials.oauth.secret,
    CAPILLARY_USERNAME: undefined,
    CAPILLARY_PASSWORD: undefined,
    CAPILLARY_GROUP_IDS: [],
    CAPILLARY_GROUP_EXTERNAL_IDS: [],
    CAPILLARY_GROUP_SEARCH: [],
    CAPILLARY_RATE_PER_SECOND: 500,
    CAPILLARY_TIMEOUT_MS: 300,
    CAPILLARY_MAX_RETRIES: 3,
    CAPILLARY_PAGE_SIZE: 100,
    ...over,
  };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

let mark = 0;
/** The simulator's request log since the current test began. */
const requests = () => sim.requests().slice(mark);
const memberCalls = () => requests().filter((r) => r.path === "/v2/userGroup2/members");

beforeAll(async () => {
  sim = await startCapillarySimulator({ state: makeState(), credentials });
});
afterAll(async () => {
  await sim.stop();
});
beforeEach(() => {
  sim.setState(makeState());
  mark = sim.requests().length;
});

describe("capillary client against the simulator", () => {
  it("reads a group with a 2^53+1 id losslessly, by id and by external id; unknown ids are null", async () => {
    const api = createCapillaryApi(config());
    const g = await api.getGroup({ id: BIG_GROUP });
    expect(g?.id).toBe(BIG_GROUP);
    expect(g?.externalId).toBe("EXT-BIG");
    expect(g?.users).toHaveLength(250);
    expect(g?.users[0]).toEqual({
      userId: "1234567890123456789",
      primaryMember: true,
      defaultGroup: true,
      active: true,
    });
    expect(g?.users[25]).toMatchObject({ userId: "1234567890123456814", active: false });
    expect(g?.programs).toEqual([
      {
        programId: BIG_PROGRAM,
        programTitle: "Fleet",
        loyaltyPoints: "12345.678",
        lifetimePoints: "99999.001",
        currentSlab: "Gold",
        slabSNo: 3,
      },
    ]);
    expect(g?.warnings).toEqual([]);
    expect((await api.getGroup({ externalId: "EXT-4242" }))?.id).toBe("4242");
    expect(await api.getGroup({ id: "777000111" })).toBeNull();
    expect(await api.getGroup({ externalId: "nope" })).toBeNull();
    const warned = await api.getGroup({ id: "1237" });
    expect(warned?.groupName).toBe("acme west");
    expect(warned?.warnings.map((w) => w.code)).toEqual([1656]);
  });

  it("lists 250 members across three pages, exact 19-digit ids, exited members included", async () => {
    const api = createCapillaryApi(config());
    const members = await collect(api.listMembers(BIG_GROUP));
    expect(members).toHaveLength(250);
    expect(new Set(members.map((m) => m.userId)).size).toBe(250);
    expect(members.map((m) => m.userId)).toEqual(
      Array.from({ length: 250 }, (_, i) => String(FIRST_USER + BigInt(i))),
    );
    expect(members[0]).toEqual<CapillaryMember>({
      userId: "1234567890123456789",
      joinedOn: "2024-01-10",
      role: "PRIMARY",
      permissions: ["REDEEM", "VIEW"],
      primaryMember: true,
    });
    expect(memberCalls().map((r) => r.query.offset)).toEqual(["0", "100", "200"]);
  });

  it("still lists a member inserted at the front between page 1 and page 2 (the list shifted)", async () => {
    const api = createCapillaryApi(config());
    sim.inject({
      kind: "mutate",
      path: "/v2/userGroup2/members",
      query: (q) => q.get("offset") === "0" && q.get("identifierValue") === BIG_GROUP,
      mutate: (s) => {
        s.groups[0]?.members.unshift(member("9223372036854775807", 7));
      },
    });
    const members = await collect(api.listMembers(BIG_GROUP));
    const ids = members.map((m) => m.userId);
    expect(ids).toHaveLength(251);
    expect(new Set(ids).size).toBe(251);
    expect(ids).toContain("9223372036854775807");
    for (let i = 0; i < 250; i++) expect(ids).toContain(String(FIRST_USER + BigInt(i)));
    // a second pass from offset 0 found it
    expect(memberCalls().filter((r) => r.query.offset === "0")).toHaveLength(2);
  });

  it("waits out a 429 with Retry-After: 1 and then succeeds", async () => {
    const api = createCapillaryApi(config());
    sim.inject({ kind: "status", path: "/v2/userGroup2", status: 429, retryAfter: "1" });
    const g = await api.getGroup({ id: "4242" });
    expect(g?.users).toHaveLength(3);
    const calls = requests().filter((r) => r.path === "/v2/userGroup2");
    expect(calls.map((r) => r.status)).toEqual([429, 200]);
    const [first, second] = calls;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(950);
    expect(api.stats()).toMatchObject({ throttled: 1, retries: 1 });
  });

  it("retries a 503 and a response slower than the timeout, and the listing is complete", async () => {
    const api = createCapillaryApi(config());
    sim.inject({
      kind: "status",
      path: "/v2/userGroup2/members",
      status: 503,
      query: (q) => q.get("offset") === "100",
    });
    sim.inject({
      kind: "delay",
      path: "/v2/userGroup2/members",
      ms: 1500,
      query: (q) => q.get("offset") === "200",
    });
    const members = await collect(api.listMembers(BIG_GROUP));
    expect(members).toHaveLength(250);
    expect(new Set(members.map((m) => m.userId)).size).toBe(250);
    const calls = memberCalls();
    expect(calls.filter((r) => r.fault === "status").map((r) => r.status)).toEqual([503]);
    expect(calls.filter((r) => r.fault === "delay")).toHaveLength(1);
    expect(api.stats().retries).toBe(2);
  });

  it("refreshes an expired token once on 401 and carries on", async () => {
    const api = createCapillaryApi(config());
    expect((await api.getGroup({ id: "4242" }))?.id).toBe("4242");
    sim.expireTokens();
    expect((await api.getGroup({ id: "1237" }))?.id).toBe("1237");
    const log = requests();
    expect(log.filter((r) => r.path === "/v3/oauth/token/generate").map((r) => r.status)).toEqual([200, 200]);
    expect(log.filter((r) => r.path === "/v2/userGroup2").map((r) => r.status)).toEqual([200, 401, 200]);
  });

  it("gives up after the retry cap with a stable code and no secret in the message", async () => {
    const api = createCapillaryApi(config({ CAPILLARY_MAX_RETRIES: 2 }));
    sim.inject({ kind: "status", path: "/v2/userGroup2", status: 503, times: 3 });
    const err = await api.getGroup({ id: "4242" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapillaryApiError);
    expect(err).toMatchObject({
      code: "CAPILLARY_HTTP_503",
      status: 503,
      path: "/v2/userGroup2",
      attempts: 3,
    });
    expect(String((err as Error).message)).not.toContain(credentials.oauth.secret);
    expect(
      requests()
        .filter((r) => r.path === "/v2/userGroup2")
        .map((r) => r.status),
    ).toEqual([503, 503, 503]);
  });

  it("authenticates with Basic (username:md5hex(password)); a wrong password is CAPILLARY_AUTH", async () => {
    const basic = { CAPILLARY_AUTH: "basic" as const, CAPILLARY_USERNAME: credentials.basic.username };
    const ok = createCapillaryApi(config({ ...basic, CAPILLARY_PASSWORD: credentials.basic.password }));
    expect((await ok.getGroup({ id: "4242" }))?.groupName).toBe("Acme Fleet");
    expect(requests().at(-1)?.auth).toBe("basic");
    const bad = createCapillaryApi(config({ ...basic, CAPILLARY_PASSWORD: "wrong" }));
    await expect(bad.getGroup({ id: "4242" })).rejects.toMatchObject({ code: "CAPILLARY_AUTH", status: 401 });
  });

  it("searches names case-insensitively across pages", async () => {
    const api = createCapillaryApi(config({ CAPILLARY_PAGE_SIZE: 10 }));
    const found = await collect(api.searchGroups("aCmE"));
    expect(found).toHaveLength(25);
    expect(found.map((g) => g.groupId)).toEqual([
      "4242",
      "1237",
      ...Array.from({ length: 23 }, (_, i) => `${5000 + i}`),
    ]);
    expect(found[0]).toEqual({ groupId: "4242", groupName: "Acme Fleet", groupExternalId: "EXT-4242" });
    expect(requests().filter((r) => r.path === "/v2/userGroup2/search")).toHaveLength(3);
  });
});
