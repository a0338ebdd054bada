import { describe, expect, it } from "vitest";
import type { GroupMeta, Membership } from "../../lib/domain/membership.ts";
import type { MembershipStore, SyncRunState } from "../../lib/ports/membership-store.ts";
import type {
  CapillaryApi,
  CapillaryGroup,
  CapillaryGroupRef,
  CapillaryGroupUser,
  CapillaryMember,
} from "../../lib/ports.ts";
import { type SyncLog, type SyncResult, settleSyncResult, syncGroups } from "../../lib/sync.ts";

// ---------- fakes implementing the ports ----------

class ApiError extends Error {
  constructor(readonly code: string) {
    super(`api failed with ${code}`);
    this.name = "CapillaryApiError";
  }
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

class FakeApi implements CapillaryApi {
  groups = new Map<string, CapillaryGroup | null | Error>();
  members = new Map<string, CapillaryMember[]>();
  /** Members listing fails after this many members were yielded. */
  membersFailAfter = new Map<string, number>();
  external = new Map<string, string | null | Error>();
  searches = new Map<string, { refs: string[]; failAfter?: number }>();
  calls: string[] = [];
  inFlight = 0;
  maxInFlight = 0;

  async getGroup(ref: { id: string } | { externalId: string }): Promise<CapillaryGroup | null> {
    this.calls.push("id" in ref ? `getGroup:id:${ref.id}` : `getGroup:ext:${ref.externalId}`);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await tick();
      let id: string;
      if ("id" in ref) id = ref.id;
      else {
        const ext = this.external.get(ref.externalId);
        if (ext instanceof Error) throw ext;
        if (ext === undefined || ext === null) return null;
        id = ext;
      }
      const g = this.groups.get(id);
      if (g instanceof Error) throw g;
      return g === undefined ? null : structuredClone(g);
    } finally {
      this.inFlight--;
    }
  }

  async *listMembers(groupId: string): AsyncIterable<CapillaryMember> {
    this.calls.push(`listMembers:${groupId}`);
    const failAfter = this.membersFailAfter.get(groupId);
    let n = 0;
    for (const m of this.members.get(groupId) ?? []) {
      if (failAfter !== undefined && n >= failAfter) throw new ApiError("HTTP_503");
      await tick();
      yield structuredClone(m);
      n++;
    }
    if (failAfter !== undefined && n >= failAfter) throw new ApiError("HTTP_503");
  }

  extended = new Map<string, string[] | Error>();
  async *extendedFieldSearch(fields: Readonly<Record<string, string>>): AsyncIterable<CapillaryGroupRef> {
    const key = JSON.stringify(fields);
    this.calls.push(`extendedFieldSearch:${key}`);
    const refs = this.extended.get(key) ?? [];
    if (refs instanceof Error) throw refs;
    for (const groupId of refs) yield { groupId, groupName: "Extended Name", groupExternalId: null };
  }

  async *searchGroups(q: string): AsyncIterable<CapillaryGroupRef> {
    this.calls.push(`search:${q}`);
    const s = this.searches.get(q) ?? { refs: [] };
    let n = 0;
    for (const groupId of s.refs) {
      if (s.failAfter !== undefined && n >= s.failAfter) throw new ApiError("TIMEOUT");
      yield { groupId, groupName: "Searched Name", groupExternalId: null };
      n++;
    }
  }
}

class MemoryStore implements MembershipStore {
  memberships = new Map<string, Membership>();
  metas = new Map<string, GroupMeta>();
  lock: { runId: string; expiresAt: number } | null = null;
  failPutFor = new Set<string>();
  released: string[] = [];

  async getGroupMemberships(groupId: string): Promise<Membership[]> {
    await tick();
    return [...this.memberships.values()].filter((m) => m.groupId === groupId).map((m) => structuredClone(m));
  }
  async putMemberships(items: readonly Membership[]): Promise<number> {
    const unique = new Map(items.map((m) => [`${m.groupId}|${m.userId}`, m]));
    for (const m of unique.values()) {
      if (this.failPutFor.has(m.groupId)) throw new Error("ProvisionedThroughputExceededException");
    }
    for (const [k, m] of unique) this.memberships.set(k, structuredClone(m));
    return unique.size;
  }
  async getGroupMeta(groupId: string): Promise<GroupMeta | null> {
    const m = this.metas.get(groupId);
    return m ? structuredClone(m) : null;
  }
  async putGroupMeta(meta: GroupMeta): Promise<void> {
    this.metas.set(meta.groupId, structuredClone(meta));
  }
  async listGroupMetas(): Promise<GroupMeta[]> {
    return [...this.metas.values()];
  }
  async *listAllMemberships(): AsyncIterable<Membership> {
    yield* this.memberships.values();
  }
  async acquireSyncLock(runId: string, ttlSeconds: number): Promise<boolean> {
    await tick();
    const now = Date.now() / 1000;
    if (this.lock && this.lock.expiresAt >= now && this.lock.runId !== runId) return false;
    this.lock = { runId, expiresAt: now + ttlSeconds };
    return true;
  }
  async releaseSyncLock(runId: string): Promise<boolean> {
    this.released.push(runId);
    if (this.lock?.runId !== runId) return false;
    this.lock = null;
    return true;
  }
  run: SyncRunState | null = null;
  list: { runId: string; entries: string[] } | null = null;
  runSaves = 0;
  async getSyncRun(): Promise<SyncRunState | null> {
    return this.run ? structuredClone(this.run) : null;
  }
  async getSyncRunList(runId: string, total: number): Promise<string[]> {
    if (this.list?.runId !== runId || this.list.entries.length !== total) throw new Error("list mismatch");
    return [...this.list.entries];
  }
  async putSyncRun(owner: string, state: SyncRunState, list?: readonly string[]): Promise<void> {
    await tick();
    if (this.lock?.runId !== owner) throw Object.assign(new Error("lock lost"), { code: "SYNC_LOCK_LOST" });
    if (list) this.list = { runId: state.runId, entries: [...list] };
    this.run = structuredClone(state);
    this.runSaves++;
  }
  get(groupId: string, userId: string): Membership | undefined {
    return this.memberships.get(`${groupId}|${userId}`);
  }
}

class MemoryLog implements SyncLog {
  entries: { level: string; message: string; attributes: Record<string, unknown> }[] = [];
  info(message: string, attributes: Record<string, unknown>): void {
    this.entries.push({ level: "info", message, attributes });
  }
  warn(message: string, attributes: Record<string, unknown>): void {
    this.entries.push({ level: "warn", message, attributes });
  }
}

// ---------- builders ----------

function group(id: string, users: CapillaryGroupUser[], extra: Partial<CapillaryGroup> = {}): CapillaryGroup {
  return {
    id,
    externalId: `EXT-${id}`,
    groupName: `Sharma Family ${id}`,
    groupStatus: "ACTIVE",
    users,
    programs: [
      {
        programId: "77",
        programTitle: "Main",
        loyaltyPoints: "1200.250",
        lifetimePoints: "5000",
        currentSlab: "Gold",
        slabSNo: 2,
      },
    ],
    warnings: [],
    ...extra,
  };
}

const u = (userId: string, active = true, defaultGroup = false): CapillaryGroupUser => ({
  userId,
  active,
  defaultGroup,
  primaryMember: false,
});
const mem = (userId: string, joinedOn: string | null = "2024-01-05"): CapillaryMember => ({
  userId,
  joinedOn,
  role: "SECONDARY",
  permissions: [],
  primaryMember: false,
});

function clock(start = "2024-02-01T00:00:00.000Z"): () => Date {
  let t = Date.parse(start);
  return () => {
    t += 1000;
    return new Date(t);
  };
}

function setup() {
  const api = new FakeApi();
  const store = new MemoryStore();
  const log = new MemoryLog();
  let n = 0;
  const deps = { api, store, log, now: clock(), newRunId: () => `run-${++n}` };
  return { api, store, log, deps };
}

const none = { groupIds: [], externalIds: [], searches: [] };

// ---------- tests ----------

describe("syncGroups: discovery", () => {
  it("unions configured ids, external ids and every search result, de-duplicated", async () => {
    const { api, deps } = setup();
    for (const id of ["1", "2", "3", "4"]) {
      api.groups.set(id, group(id, [u(`u${id}`)]));
      api.members.set(id, [mem(`u${id}`)]);
    }
    api.external.set("EXT-3", "3");
    api.external.set("EXT-1", "1");
    api.searches.set("sharma", { refs: ["2", "4", "1"] });
    const r = await syncGroups(deps, {
      groupIds: ["1", "0002"],
      externalIds: ["EXT-3", "EXT-1"],
      searches: ["sharma"],
    });
    expect(r.groups).toBe(4);
    expect(r.synced).toBe(4);
    expect(r.failed).toEqual([]);
    // Groups fetched by external id are not fetched again by id.
    expect(api.calls.filter((c) => c.startsWith("getGroup:id:")).sort()).toEqual([
      "getGroup:id:2",
      "getGroup:id:4",
    ]);
    expect(api.calls.filter((c) => c.startsWith("listMembers:")).sort()).toEqual([
      "listMembers:1",
      "listMembers:2",
      "listMembers:3",
      "listMembers:4",
    ]);
  });

  it("counts unknown external ids and failed discoveries without failing the run", async () => {
    const { api, deps, log } = setup();
    api.groups.set("5", group("5", [u("a")]));
    api.groups.set("6", group("6", [u("b")]));
    api.external.set("EXT-BAD", null);
    api.external.set("EXT-ERR", new ApiError("HTTP_500"));
    api.searches.set("q1", { refs: ["5", "6"], failAfter: 1 });
    const r = await syncGroups(deps, { groupIds: [], externalIds: ["EXT-BAD", "EXT-ERR"], searches: ["q1"] });
    expect(r.unresolvedExternalIds).toBe(1);
    expect(r.discoveryFailures).toBe(2);
    expect(r.groups).toBe(1); // the first search page's group is still synced
    expect(r.synced).toBe(1);
    const warn = log.entries.find((e) => e.message === "external id resolution failed");
    expect(warn?.attributes).toMatchObject({ externalIdIndex: 1, errorCode: "HTTP_500" });
  });
});

describe("syncGroups: writes", () => {
  it("writes one item per membership and the group meta with programs and syncedAt", async () => {
    const { api, store, deps } = setup();
    api.groups.set("10", group("10", [u("a", true, true), u("b"), u("c", false)]));
    api.members.set("10", [mem("a", "2024-01-02"), mem("b", null), mem("d", "2024-01-20")]);
    const r = await syncGroups(deps, { ...none, groupIds: ["10"] });
    expect(r).toMatchObject({
      groups: 1,
      synced: 1,
      membershipsWritten: 4,
      exitsObserved: 0,
      lockSkipped: false,
    });
    expect(store.get("10", "a")).toMatchObject({ active: true, defaultGroup: true, joinedOn: "2024-01-02" });
    expect(store.get("10", "c")).toMatchObject({ active: false, firstSeenExited: true });
    expect(store.get("10", "d")).toMatchObject({ active: true, joinedOn: "2024-01-20" });
    const meta = store.metas.get("10");
    expect(meta).toEqual({
      groupId: "10",
      externalId: "EXT-10",
      name: "Sharma Family 10",
      status: "ACTIVE",
      programs: [{ programId: "77", loyaltyPoints: "1200.250", currentSlab: "Gold" }],
      syncedAt: meta?.syncedAt,
    });
    expect(Date.parse(meta?.syncedAt ?? "")).toBeGreaterThan(Date.parse(r.startedAt));
  });

  it("a later run observes exits (seen exited and not returned) and counts them", async () => {
    const { api, store, deps } = setup();
    api.groups.set("10", group("10", [u("a"), u("b"), u("c")]));
    api.members.set("10", [mem("a"), mem("b"), mem("c")]);
    await syncGroups(deps, { ...none, groupIds: ["10"] });
    api.groups.set("10", group("10", [u("a"), u("b", false)]));
    api.members.set("10", [mem("a")]);
    const r = await syncGroups(deps, { ...none, groupIds: ["10"] });
    expect(r.exitsObserved).toBe(2);
    expect(r.membershipsWritten).toBe(3);
    expect(store.get("10", "b")).toMatchObject({ active: false, exitSeenAt: expect.any(String) });
    expect(store.get("10", "c")).toMatchObject({ active: false, exitSeenAt: expect.any(String) });
    expect(store.get("10", "a")?.active).toBe(true);
  });

  it("a group answered with 1632 is stored GONE (last name kept) and its active memberships exited", async () => {
    const { api, store, deps } = setup();
    api.groups.set("10", group("10", [u("a"), u("b", false)]));
    api.members.set("10", [mem("a")]);
    await syncGroups(deps, { ...none, groupIds: ["10"] });
    api.groups.delete("10");
    const r = await syncGroups(deps, { ...none, groupIds: ["10"] });
    expect(r).toMatchObject({ synced: 1, gone: 1, exitsObserved: 1, failed: [] });
    expect(store.metas.get("10")).toMatchObject({
      status: "GONE",
      name: "Sharma Family 10",
      externalId: "EXT-10",
    });
    expect(store.get("10", "a")).toMatchObject({ active: false, exitSeenAt: expect.any(String) });
    expect(store.get("10", "b")).toMatchObject({ active: false, firstSeenExited: true, exitSeenAt: null });
    expect(api.calls.filter((c) => c === "listMembers:10")).toHaveLength(1);
  });
});

describe("syncGroups: failures", () => {
  it("a group whose member listing fails midway keeps its last state; the others are synced", async () => {
    const { api, store, deps, log } = setup();
    for (const id of ["1", "2", "3"]) {
      api.groups.set(id, group(id, [u("a"), u("b")]));
      api.members.set(id, [mem("a"), mem("b")]);
    }
    await syncGroups(deps, { ...none, groupIds: ["1", "2", "3"] });
    const before = structuredClone([...store.memberships.values()].filter((m) => m.groupId === "2"));
    const metaBefore = structuredClone(store.metas.get("2"));

    api.groups.set("2", group("2", [u("a")], { groupStatus: "INACTIVE" })); // would exit b
    api.membersFailAfter.set("2", 1);
    api.groups.set("3", new ApiError("HTTP_502"));
    const r = await syncGroups(deps, { ...none, groupIds: ["1", "2", "3"] });
    expect(r.failed).toEqual(["2", "3"]);
    expect(r.synced).toBe(1);
    expect([...store.memberships.values()].filter((m) => m.groupId === "2")).toEqual(before);
    expect(store.metas.get("2")).toEqual(metaBefore);
    const warns = log.entries.filter((e) => e.message.startsWith("group sync failed"));
    expect(warns.map((w) => w.attributes.groupId).sort()).toEqual(["2", "3"]);
    expect(warns.find((w) => w.attributes.groupId === "2")?.attributes).toMatchObject({
      errorCode: "HTTP_503",
    });
    expect(warns.find((w) => w.attributes.groupId === "3")?.attributes).toMatchObject({
      errorCode: "HTTP_502",
    });
  });

  it("a store failure fails that group only", async () => {
    const { api, store, deps } = setup();
    for (const id of ["1", "2"]) {
      api.groups.set(id, group(id, [u("a")]));
      api.members.set(id, [mem("a")]);
    }
    store.failPutFor.add("1");
    const r = await syncGroups(deps, { ...none, groupIds: ["1", "2"] });
    expect(r.failed).toEqual(["1"]);
    expect(store.metas.has("1")).toBe(false);
    expect(store.metas.has("2")).toBe(true);
  });

  it("logs carry ids and counts, never names", async () => {
    const { api, deps, log } = setup();
    api.groups.set("1", group("1", [u("a")], { warnings: [{ code: 1656, message: "Sharma warning" }] }));
    api.members.set("1", [mem("a")]);
    api.groups.set("2", new ApiError("HTTP_500"));
    api.searches.set("Sharma", { refs: ["1"] });
    await syncGroups(deps, { groupIds: ["2"], externalIds: [], searches: ["Sharma"] });
    const text = JSON.stringify(log.entries);
    expect(text).not.toMatch(/sharma/i);
    expect(text).not.toContain("Searched Name");
    expect(log.entries.find((e) => e.message === "group answered with warnings")?.attributes).toEqual({
      groupId: "1",
      warningCodes: [1656],
    });
  });
});

describe("syncGroups: concurrency and lock", () => {
  it("syncs at most `concurrency` groups at once, and more than one", async () => {
    const { api, deps } = setup();
    const ids = Array.from({ length: 12 }, (_, i) => String(i + 1));
    for (const id of ids) {
      api.groups.set(id, group(id, [u("a")]));
      api.members.set(id, [mem("a")]);
    }
    const r = await syncGroups(deps, { ...none, groupIds: ids, concurrency: 4 });
    expect(r.synced).toBe(12);
    expect(api.maxInFlight).toBeLessThanOrEqual(4);
    expect(api.maxInFlight).toBeGreaterThan(1);
  });

  it("a second concurrent run does nothing and says so; the lock is released after the run", async () => {
    const { api, store, deps, log } = setup();
    api.groups.set("1", group("1", [u("a")]));
    api.members.set("1", [mem("a")]);
    const [a, b] = await Promise.all([
      syncGroups(deps, { ...none, groupIds: ["1"] }),
      syncGroups(deps, { ...none, groupIds: ["1"] }),
    ]);
    const results = [a, b];
    expect(results.filter((r) => r.lockSkipped)).toHaveLength(1);
    const skipped = results.find((r) => r.lockSkipped);
    expect(skipped).toMatchObject({ groups: 0, synced: 0, membershipsWritten: 0 });
    expect(api.calls.filter((c) => c === "getGroup:id:1")).toHaveLength(1);
    expect(log.entries.some((e) => e.message.startsWith("sync skipped") && e.level === "warn")).toBe(true);
    expect(store.lock).toBeNull();
    const third = await syncGroups(deps, { ...none, groupIds: ["1"] });
    expect(third.lockSkipped).toBe(false);
  });

  it("releases the lock even when every group fails", async () => {
    const { api, store, deps } = setup();
    api.groups.set("1", new ApiError("HTTP_500"));
    const r = await syncGroups(deps, { ...none, groupIds: ["1"] });
    expect(r.failed).toEqual(["1"]);
    expect(store.released).toEqual([r.invocationId]);
    expect(store.lock).toBeNull();
  });
});

describe("settleSyncResult", () => {
  const base: SyncResult = {
    runId: "r",
    invocationId: "i",
    resumed: false,
    complete: true,
    remaining: 0,
    run: null,
    startedAt: "2024-01-01T00:00:00.000Z",
    finishedAt: "2024-01-01T00:01:00.000Z",
    groups: 3,
    synced: 3,
    gone: 0,
    failed: [],
    discoveryFailures: 0,
    unresolvedExternalIds: 0,
    membershipsWritten: 10,
    exitsObserved: 0,
    lockSkipped: false,
  };

  it("throws with a code when every group failed", () => {
    const log = new MemoryLog();
    expect(() => settleSyncResult({ ...base, synced: 0, failed: ["1", "2", "3"] }, log)).toThrow(
      expect.objectContaining({ code: "SYNC_ALL_GROUPS_FAILED" }),
    );
  });

  it("throws when discovery failed and found nothing", () => {
    expect(() =>
      settleSyncResult({ ...base, groups: 0, synced: 0, discoveryFailures: 1 }, new MemoryLog()),
    ).toThrow(expect.objectContaining({ code: "SYNC_DISCOVERY_FAILED" }));
  });

  it("returns the result and warns with the count when some groups failed", () => {
    const log = new MemoryLog();
    const r = { ...base, synced: 2, failed: ["2"] };
    expect(settleSyncResult(r, log)).toBe(r);
    expect(log.entries).toEqual([
      {
        level: "warn",
        message: expect.any(String),
        attributes: { runId: "r", failed: 1, groups: 3, discoveryFailures: 0 },
      },
    ]);
  });

  it("returns quietly when all is well, nothing is configured, or the lock was held", () => {
    const log = new MemoryLog();
    expect(settleSyncResult(base, log)).toBe(base);
    const empty = { ...base, groups: 0, synced: 0 };
    expect(settleSyncResult(empty, log)).toBe(empty);
    const skipped = { ...base, groups: 0, synced: 0, lockSkipped: true };
    expect(settleSyncResult(skipped, log)).toBe(skipped);
    expect(log.entries).toEqual([]);
  });
});

describe("syncGroups: more discovery sources", () => {
  it("unions extended field searches and membership CSV ids with the rest, de-duplicated", async () => {
    const { api, deps, log } = setup();
    for (const id of ["1", "2", "3", "4", "5"]) {
      api.groups.set(id, group(id, [u(`u${id}`)]));
      api.members.set(id, [mem(`u${id}`)]);
    }
    api.extended.set(JSON.stringify({ region: "north" }), ["2", "3"]);
    api.extended.set(JSON.stringify({ segment: "fleet", tier: "A" }), new ApiError("HTTP_500"));
    const r = await syncGroups(
      { ...deps, extraGroupIds: async () => ({ groupIds: ["003", "4", "5"], files: 1, rows: 3 }) },
      {
        ...none,
        groupIds: ["1"],
        extendedFieldSearches: [{ region: "north" }, { segment: "fleet", tier: "A" }],
      },
    );
    expect(r).toMatchObject({ groups: 5, synced: 5, discoveryFailures: 1, complete: true });
    expect(api.calls.filter((c) => c.startsWith("listMembers:")).sort()).toEqual(
      ["1", "2", "3", "4", "5"].map((id) => `listMembers:${id}`),
    );
    expect(log.entries.find((e) => e.message === "membership csv discovery done")?.attributes).toEqual({
      files: 1,
      rows: 3,
      groups: 3,
      added: 2,
    });
    expect(JSON.stringify(log.entries)).not.toContain("north");
  });

  it("a failing CSV source is a discovery failure; the configured groups are still synced", async () => {
    const { api, deps } = setup();
    api.groups.set("1", group("1", [u("a")]));
    const r = await syncGroups(
      {
        ...deps,
        extraGroupIds: async () => {
          throw new Error("AccessDenied");
        },
      },
      { ...none, groupIds: ["1"] },
    );
    expect(r).toMatchObject({ groups: 1, synced: 1, discoveryFailures: 1 });
  });
});

describe("syncGroups: runs longer than one invocation", () => {
  /** An invocation whose remaining time drops by `costMs` per group started. */
  function budget(totalMs: number, costMs: number) {
    let left = totalMs;
    return {
      remainingMs: () => left,
      spend: () => {
        left -= costMs;
      },
    };
  }

  function world(n: number) {
    const s = setup();
    const ids = Array.from({ length: n }, (_, i) => String(100 + i));
    for (const id of ids) {
      s.api.groups.set(id, group(id, [u(`a${id}`), u(`b${id}`)]));
      s.api.members.set(id, [mem(`a${id}`), mem(`b${id}`)]);
    }
    return { ...s, ids };
  }

  it("stops before the time reserve, checkpoints, and the next invocations resume to completion", async () => {
    const { api, store, deps, ids } = world(23);
    const opts = { ...none, groupIds: ids, concurrency: 3, timeReserveMs: 1_000, checkpointEvery: 4 };
    const results: SyncResult[] = [];
    for (let i = 0; i < 10; i++) {
      const b = budget(10_500, 1_000); // room for 10 groups per invocation (a reserve of 1 s)
      const origGet = api.getGroup.bind(api);
      api.getGroup = async (ref) => {
        b.spend();
        return origGet(ref);
      };
      const r = await syncGroups({ ...deps, remainingMs: b.remainingMs }, opts);
      api.getGroup = origGet;
      results.push(r);
      if (r.complete) break;
    }
    expect(results.map((r) => r.complete)).toEqual([false, false, true]);
    expect(results.map((r) => r.resumed)).toEqual([false, true, true]);
    expect(new Set(results.map((r) => r.runId)).size).toBe(1);
    expect(results.map((r) => r.groups)).toEqual([10, 10, 3]);
    expect(results[0]?.remaining).toBe(13);
    // Every group exactly once over the run: no group skipped, none re-done.
    const listed = api.calls.filter((c) => c.startsWith("listMembers:")).map((c) => c.slice(12));
    expect(listed.sort()).toEqual([...ids].sort());
    expect(store.memberships.size).toBe(46);
    expect(store.run).toMatchObject({
      status: "complete",
      cursor: 23,
      total: 23,
      synced: 23,
      invocations: 3,
    });
    expect(store.lock).toBeNull();
    // The next invocation starts a new run (discovers again).
    const next = await syncGroups(deps, opts);
    expect(next).toMatchObject({ resumed: false, complete: true, groups: 23 });
    expect(next.runId).not.toBe(results[0]?.runId);
  });

  it("an invocation started while another holds the lock changes nothing, also mid-run", async () => {
    const { store, deps, ids } = world(6);
    const opts = { ...none, groupIds: ids, timeReserveMs: 1_000 };
    const first = await syncGroups({ ...deps, remainingMs: () => 500 }, opts); // no time: list saved only
    expect(first).toMatchObject({ complete: false, groups: 0, remaining: 6 });
    const run = structuredClone(store.run);
    store.lock = { runId: "someone-else", expiresAt: Date.now() / 1000 + 60 };
    const second = await syncGroups(deps, opts);
    expect(second.lockSkipped).toBe(true);
    expect(store.run).toEqual(run);
    expect(store.memberships.size).toBe(0);
    store.lock = null;
    const third = await syncGroups(deps, opts);
    expect(third).toMatchObject({ resumed: true, complete: true, groups: 6, runId: first.runId });
  });

  it("an invocation that lost its lock cannot save progress over a newer one", async () => {
    const { store, deps, ids } = world(4);
    const orig = store.putMemberships.bind(store);
    store.putMemberships = async (items) => {
      store.lock = { runId: "thief", expiresAt: Date.now() / 1000 + 60 }; // our lock expired and was taken
      return orig(items);
    };
    await expect(syncGroups(deps, { ...none, groupIds: ids, checkpointEvery: 1 })).rejects.toMatchObject({
      code: "SYNC_LOCK_LOST",
    });
    expect(store.run?.cursor).toBe(0);
  });

  it("renews its lock at every checkpoint (ttl from the remaining time, capped)", async () => {
    const { store, deps, ids } = world(4);
    const ttls: number[] = [];
    const orig = store.acquireSyncLock.bind(store);
    store.acquireSyncLock = (owner, ttl) => {
      ttls.push(ttl);
      return orig(owner, ttl);
    };
    let left = 600_000;
    const r = await syncGroups(
      {
        ...deps,
        remainingMs: () => {
          left -= 10_000;
          return left;
        },
      },
      { ...none, groupIds: ids, concurrency: 1, checkpointEvery: 2, timeReserveMs: 1 },
    );
    expect(r.complete).toBe(true);
    // acquire, 2 checkpoints, the final save: each renewal shorter, as the invocation's time runs out
    expect(ttls).toHaveLength(4);
    expect(ttls[0]).toBe(620);
    expect([...ttls].sort((a, b) => b - a)).toEqual(ttls);
    const long = await syncGroups({ ...deps, remainingMs: () => 86_400_000 }, { ...none, groupIds: ids });
    expect(long.complete).toBe(true);
    expect(ttls.at(-1)).toBe(1800);
  });

  it("known groups that this run did not discover are synced only after the discovered ones", async () => {
    const { api, store, deps } = world(0);
    for (const id of ["1", "2", "3"]) {
      api.groups.set(id, group(id, [u(`m${id}`)]));
      api.members.set(id, [mem(`m${id}`)]);
    }
    await syncGroups(deps, { ...none, groupIds: ["1", "2", "3"] });
    // 2 drops out of the configuration; 3 is deleted at the source and drops out too.
    api.groups.delete("3");
    api.calls = [];
    const r = await syncGroups(deps, { ...none, groupIds: ["1"], syncKnownGroups: true });
    expect(r).toMatchObject({ complete: true, groups: 3, synced: 3, gone: 1 });
    expect(api.calls.filter((c) => c.startsWith("getGroup:id:"))).toEqual([
      "getGroup:id:1",
      ...["getGroup:id:2", "getGroup:id:3"].sort(),
    ]);
    expect(store.get("2", "m2")?.active).toBe(true);
    expect(store.get("3", "m3")).toMatchObject({ active: false, exitSeenAt: expect.any(String) });
    expect(store.metas.get("3")?.status).toBe("GONE");
    expect(store.run).toMatchObject({ total: 3, sweepStart: 1 });
    // A GONE group is not checked again.
    api.calls = [];
    await syncGroups(deps, { ...none, groupIds: ["1"], syncKnownGroups: true });
    expect(api.calls.filter((c) => c.startsWith("getGroup:id:")).sort()).toEqual([
      "getGroup:id:1",
      "getGroup:id:2",
    ]);
  });

  it("the known-groups phase waits for a complete run, across invocations", async () => {
    const { api, store, deps, ids } = world(4);
    api.groups.set("9", group("9", [u("k")]));
    api.members.set("9", [mem("k")]);
    await syncGroups(deps, { ...none, groupIds: ["9"] });
    api.calls = [];
    const opts = { ...none, groupIds: ids, syncKnownGroups: true, timeReserveMs: 1_000, concurrency: 1 };
    let left = 2_500; // the lock's ttl reads it once, then room for 2 groups
    const first = await syncGroups(
      {
        ...deps,
        remainingMs: () => {
          left -= 500;
          return left;
        },
      },
      opts,
    );
    expect(first.complete).toBe(false);
    expect(store.run?.sweepStart).toBeNull();
    expect(api.calls).not.toContain("getGroup:id:9");
    const second = await syncGroups(deps, opts);
    expect(second.complete).toBe(true);
    expect(api.calls.filter((c) => c === "getGroup:id:9")).toHaveLength(1);
    expect(api.calls.indexOf("getGroup:id:9")).toBe(api.calls.length - 2); // after every discovered group
  });

  it("an unreadable checkpoint list starts a new run instead of failing forever", async () => {
    const { store, deps, ids, log } = world(3);
    await syncGroups({ ...deps, remainingMs: () => 0 }, { ...none, groupIds: ids, timeReserveMs: 1 });
    expect(store.run?.status).toBe("running");
    store.list = null;
    const r = await syncGroups(deps, { ...none, groupIds: ids });
    expect(r).toMatchObject({ resumed: false, complete: true, groups: 3 });
    expect(log.entries.some((e) => e.message.startsWith("unfinished sync run unreadable"))).toBe(true);
  });
});
