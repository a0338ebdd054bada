import { randomUUID } from "node:crypto";
import type { GroupMeta, Membership } from "./domain/membership.ts";
import { mergeGroupObservation } from "./domain/membership-merge.ts";
import type { MembershipStore } from "./ports/membership-store.ts";
import type { CapillaryApi, CapillaryGroup, CapillaryMember } from "./ports.ts";

/**
 * Use case: sync the configured groups' memberships from the Capillary API into the store.
 * A group is written only after a complete observation (group + every /members page); a group that fails
 * keeps its last known state and is retried on the next run. Logs carry ids and counts only.
 */

/** Structured logger: the Powertools Logger fits, and so does a test fake. */
export interface SyncLog {
  info(message: string, attributes: Record<string, unknown>): void;
  warn(message: string, attributes: Record<string, unknown>): void;
}

export interface SyncDeps {
  api: CapillaryApi;
  store: MembershipStore;
  now: () => Date;
  log: SyncLog;
  newRunId?: () => string;
}

export interface SyncOptions {
  groupIds: readonly string[];
  externalIds: readonly string[];
  searches: readonly string[];
  /** Groups synced at once. Default 4; the API client's rate limiter governs requests. */
  concurrency?: number;
  /** Lifetime of the run lock, so a crashed run does not block later ones. Default 900 s. */
  lockTtlSeconds?: number;
}

export interface SyncResult {
  runId: string;
  startedAt: string;
  finishedAt: string;
  /** Distinct groups discovered this run. */
  groups: number;
  /** Groups observed completely and written (gone ones included). */
  synced: number;
  /** Groups the API answered 1632 for (stored with status GONE). */
  gone: number;
  /** Ids of groups that failed; their stored state is unchanged. */
  failed: string[];
  /** External ids or searches that could not be resolved because of an error. */
  discoveryFailures: number;
  /** Configured external ids the API does not know (1632). */
  unresolvedExternalIds: number;
  membershipsWritten: number;
  exitsObserved: number;
  /** true when another run held the lock: this run did nothing. */
  lockSkipped: boolean;
}

export type SyncErrorCode = "SYNC_ALL_GROUPS_FAILED" | "SYNC_DISCOVERY_FAILED";

export class SyncError extends Error {
  constructor(
    readonly code: SyncErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "SyncError";
  }
}

interface Discovery {
  ids: string[];
  /** Groups already fetched while resolving external ids, by id. */
  fetched: Map<string, CapillaryGroup>;
  failures: number;
  unresolved: number;
}

interface GroupOutcome {
  written: number;
  exits: number;
  gone: boolean;
}

export async function syncGroups(deps: SyncDeps, opts: SyncOptions): Promise<SyncResult> {
  const { store, log } = deps;
  const runId = (deps.newRunId ?? randomUUID)();
  const startedAt = deps.now().toISOString();
  const result: SyncResult = {
    runId,
    startedAt,
    finishedAt: startedAt,
    groups: 0,
    synced: 0,
    gone: 0,
    failed: [],
    discoveryFailures: 0,
    unresolvedExternalIds: 0,
    membershipsWritten: 0,
    exitsObserved: 0,
    lockSkipped: false,
  };

  if (!(await store.acquireSyncLock(runId, opts.lockTtlSeconds ?? 900))) {
    log.warn("sync skipped: another run holds the lock", { runId });
    return { ...result, lockSkipped: true, finishedAt: deps.now().toISOString() };
  }

  try {
    const concurrency = Math.max(1, opts.concurrency ?? 4);
    const discovery = await discover(deps, opts, concurrency);
    result.groups = discovery.ids.length;
    result.discoveryFailures = discovery.failures;
    result.unresolvedExternalIds = discovery.unresolved;
    log.info("sync discovery done", {
      runId,
      groups: discovery.ids.length,
      discoveryFailures: discovery.failures,
      unresolvedExternalIds: discovery.unresolved,
    });

    const failed = new Set<string>();
    await forEachLimit(discovery.ids, concurrency, async (groupId) => {
      try {
        const outcome = await syncGroup(deps, groupId, discovery.fetched.get(groupId));
        result.synced++;
        if (outcome.gone) result.gone++;
        result.membershipsWritten += outcome.written;
        result.exitsObserved += outcome.exits;
        log.info("group synced", {
          runId,
          groupId,
          gone: outcome.gone,
          written: outcome.written,
          exits: outcome.exits,
        });
      } catch (e) {
        failed.add(groupId);
        log.warn("group sync failed; last known state kept", { runId, groupId, ...errorAttributes(e) });
      }
    });
    result.failed = discovery.ids.filter((id) => failed.has(id));
  } finally {
    await store.releaseSyncLock(runId).catch((e: unknown) => {
      log.warn("sync lock release failed; it expires by itself", { runId, ...errorAttributes(e) });
    });
  }

  result.finishedAt = deps.now().toISOString();
  log.info("sync done", {
    runId,
    groups: result.groups,
    synced: result.synced,
    gone: result.gone,
    failed: result.failed.length,
    membershipsWritten: result.membershipsWritten,
    exitsObserved: result.exitsObserved,
  });
  return result;
}

/**
 * What a scheduled run makes of a result: throws when nothing could be synced (every discovered group
 * failed, or discovery failed and found nothing) so the scheduler sees a failure; otherwise warns with the
 * count of failed groups (retried next run) and returns the result.
 */
export function settleSyncResult(result: SyncResult, log: SyncLog): SyncResult {
  if (result.lockSkipped) return result;
  if (result.groups > 0 && result.failed.length === result.groups) {
    throw new SyncError(
      "SYNC_ALL_GROUPS_FAILED",
      `all ${result.groups} groups failed in run ${result.runId}`,
    );
  }
  if (result.groups === 0 && result.discoveryFailures > 0) {
    throw new SyncError("SYNC_DISCOVERY_FAILED", `group discovery failed in run ${result.runId}`);
  }
  if (result.failed.length > 0 || result.discoveryFailures > 0) {
    log.warn("sync finished with failures; they are retried next run", {
      runId: result.runId,
      failed: result.failed.length,
      groups: result.groups,
      discoveryFailures: result.discoveryFailures,
    });
  }
  return result;
}

/** Group ids are numbers at the source: "0042" and "42" are one group. */
function canonicalId(id: string): string {
  const t = id.trim();
  return /^\d+$/.test(t) ? BigInt(t).toString() : t;
}

async function discover(deps: SyncDeps, opts: SyncOptions, concurrency: number): Promise<Discovery> {
  const { api, log } = deps;
  const ids = new Set<string>();
  const fetched = new Map<string, CapillaryGroup>();
  let failures = 0;
  let unresolved = 0;

  for (const id of opts.groupIds) ids.add(canonicalId(id));

  const resolved: (string | null)[] = new Array(opts.externalIds.length).fill(null);
  await forEachLimit(
    opts.externalIds.map((externalId, index) => ({ externalId, index })),
    concurrency,
    async ({ externalId, index }) => {
      try {
        const group = await api.getGroup({ externalId });
        if (group === null) {
          unresolved++;
          log.warn("configured external id not found (1632)", { externalIdIndex: index });
          return;
        }
        const id = canonicalId(group.id);
        resolved[index] = id;
        fetched.set(id, group);
      } catch (e) {
        failures++;
        log.warn("external id resolution failed", { externalIdIndex: index, ...errorAttributes(e) });
      }
    },
  );
  for (const id of resolved) if (id !== null) ids.add(id);

  for (const [index, q] of opts.searches.entries()) {
    let found = 0;
    try {
      for await (const ref of api.searchGroups(q)) {
        ids.add(canonicalId(ref.groupId));
        found++;
      }
    } catch (e) {
      failures++;
      log.warn("group search failed", { searchIndex: index, found, ...errorAttributes(e) });
      continue;
    }
    log.info("group search done", { searchIndex: index, found });
  }
  return { ids: [...ids], fetched, failures, unresolved };
}

async function syncGroup(
  deps: SyncDeps,
  groupId: string,
  prefetched: CapillaryGroup | undefined,
): Promise<GroupOutcome> {
  const { api, store, log } = deps;
  const group = prefetched ?? (await api.getGroup({ id: groupId }));

  const members: CapillaryMember[] = [];
  if (group !== null) {
    if (group.warnings.length > 0) {
      log.info("group answered with warnings", { groupId, warningCodes: group.warnings.map((w) => w.code) });
    }
    for await (const m of api.listMembers(groupId)) members.push(m);
  }

  // Both observations are complete: merge with the last known state and write.
  const previous = await store.getGroupMemberships(groupId);
  const at = deps.now().toISOString();
  const items = mergeGroupObservation(previous, { groupId, users: group?.users ?? [], members }, at);
  const written = await store.putMemberships(items);
  await store.putGroupMeta(group === null ? await goneMeta(store, groupId, at) : metaOf(groupId, group, at));
  return { written, exits: countExits(previous, items), gone: group === null };
}

function metaOf(groupId: string, group: CapillaryGroup, syncedAt: string): GroupMeta {
  return {
    groupId,
    externalId: group.externalId,
    name: group.groupName,
    status: group.groupStatus,
    programs: group.programs.map((p) => ({
      programId: p.programId,
      loyaltyPoints: p.loyaltyPoints,
      currentSlab: p.currentSlab,
    })),
    syncedAt,
  };
}

/** A gone group keeps its last known name, external id and programs; only its status changes. */
async function goneMeta(store: MembershipStore, groupId: string, syncedAt: string): Promise<GroupMeta> {
  const last = await store.getGroupMeta(groupId);
  return {
    groupId,
    externalId: last?.externalId ?? null,
    name: last?.name ?? "",
    status: "GONE",
    programs: last?.programs ?? [],
    syncedAt,
  };
}

function countExits(previous: readonly Membership[], written: readonly Membership[]): number {
  const wasActive = new Set(previous.filter((m) => m.active).map((m) => m.userId));
  return written.filter((m) => !m.active && wasActive.has(m.userId)).length;
}

function errorAttributes(e: unknown): Record<string, string> {
  if (!(e instanceof Error)) return { errorName: typeof e };
  const code =
    "code" in e && (typeof e.code === "string" || typeof e.code === "number") ? String(e.code) : null;
  return code === null ? { errorName: e.name } : { errorName: e.name, errorCode: code };
}

/** Runs `fn` over `items` with at most `limit` in flight; never rejects (fn handles its own errors). */
async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const queue = items[Symbol.iterator](); // shared by the workers: each item is taken once
  const worker = async () => {
    for (let r = queue.next(); !r.done; r = queue.next()) await fn(r.value);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
