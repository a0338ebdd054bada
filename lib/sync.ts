import { randomUUID } from "node:crypto";
import type { GroupMeta, Membership } from "./domain/membership.ts";
import { mergeGroupObservation } from "./domain/membership-merge.ts";
import type { MembershipStore, SyncRunState } from "./ports/membership-store.ts";
import type { CapillaryApi, CapillaryGroup, CapillaryMember } from "./ports.ts";

/**
 * Use case: sync the groups' memberships from the Capillary API into the store.
 *
 * A group is written only after a complete observation (group + every /members page): mark-and-sweep of
 * its memberships (merge) never sees a partial list. A group that fails keeps its last known state and is
 * retried on the next run.
 *
 * A run can be longer than one invocation (10,000 groups at 10 requests/s take over 15 minutes). Its
 * discovered list and a cursor are checkpointed in the store (`SYNC#RUN`); an invocation starts no new
 * group once `remainingMs()` drops below `timeReserveMs`, saves the cursor and returns `complete: false`;
 * the next invocation (the handler re-invokes itself, or the next schedule) resumes the run instead of
 * starting a new one. Each invocation holds the sync lock for its lifetime (renewed at each checkpoint),
 * and checkpoints are written only while it holds it: a second invocation started meanwhile returns
 * `lockSkipped` and changes nothing; one that lost its lock stops with SYNC_LOCK_LOST.
 *
 * Discovery (new runs only): configured ids, external ids (resolved here), name searches, extended field
 * searches and extra ids (the Member Care CSVs), unioned and de-duplicated (ids canonical). When every
 * discovered group is done and `syncKnownGroups` is set, the run's last phase syncs the known groups (not
 * GONE) that this run has not synced: a group that left discovery (dropped from a CSV, renamed out of a
 * search) is verified by id instead of keeping a stale active membership list; only the API's 1632 makes
 * it GONE. This phase is computed only after the discovered list is complete.
 *
 * Logs carry ids and counts only.
 */

/** Structured logger: the Powertools Logger fits, and so does a test fake. */
export interface SyncLog {
  info(message: string, attributes: Record<string, unknown>): void;
  warn(message: string, attributes: Record<string, unknown>): void;
}

/** Group ids from outside the API (Member Care membership CSVs), with counts for the log. */
export interface ExtraGroupIds {
  groupIds: readonly string[];
  files?: number;
  filesSkipped?: number;
  rows?: number;
  rowsRejected?: number;
}

export interface SyncDeps {
  api: CapillaryApi;
  store: MembershipStore;
  now: () => Date;
  log: SyncLog;
  newRunId?: () => string;
  /** Time left in this invocation, ms (Lambda: context.getRemainingTimeInMillis). Default: unlimited. */
  remainingMs?: () => number;
  /** More group ids for discovery (the membership CSVs); a failure counts as a discovery failure. */
  extraGroupIds?: () => Promise<ExtraGroupIds>;
}

export interface SyncOptions {
  groupIds: readonly string[];
  externalIds: readonly string[];
  searches: readonly string[];
  /** Each object is one extendedFieldSearch (every field must match). */
  extendedFieldSearches?: readonly Readonly<Record<string, string>>[];
  /** Also sync known groups that this run did not discover (see above). Default false. */
  syncKnownGroups?: boolean;
  /** Groups synced at once. Default 4; the API client's rate limiter governs requests. */
  concurrency?: number;
  /**
   * Lifetime of the lock (renewed at each checkpoint), so a crashed invocation does not block later ones.
   * Default: the remaining time plus 30 s, at most 1800 s (900 s without `remainingMs`).
   */
  lockTtlSeconds?: number;
  /** Start no new group when less than this remains. Default 90 s. */
  timeReserveMs?: number;
  /** Save the cursor every this many groups (and at the end). Default 25. */
  checkpointEvery?: number;
}

export interface SyncResult {
  /** The run (it may span several invocations). */
  runId: string;
  /** This invocation (the lock owner). */
  invocationId: string;
  /** When the run started. */
  startedAt: string;
  finishedAt: string;
  /** This invocation resumed a run that an earlier one started. */
  resumed: boolean;
  /** The run is finished (every entry done); false: it continues in a later invocation. */
  complete: boolean;
  /** Entries of the run's list not yet done. */
  remaining: number;
  /** Distinct groups handled by this invocation (for a run done in one invocation: every group discovered). */
  groups: number;
  /** Groups observed completely and written (gone ones included), this invocation. */
  synced: number;
  /** Groups the API answered 1632 for (stored with status GONE), this invocation. */
  gone: number;
  /** Ids of groups that failed in this invocation; their stored state is unchanged. */
  failed: string[];
  /** External ids, searches or CSV reads that could not be done because of an error (this run). */
  discoveryFailures: number;
  /** Configured external ids the API does not know (1632). */
  unresolvedExternalIds: number;
  membershipsWritten: number;
  exitsObserved: number;
  /** true when another invocation held the lock: this one did nothing. */
  lockSkipped: boolean;
  /** The run's cumulative state after this invocation (null when the lock was held elsewhere). */
  run: SyncRunState | null;
}

export type SyncErrorCode = "SYNC_ALL_GROUPS_FAILED" | "SYNC_DISCOVERY_FAILED" | "SYNC_LOCK_LOST";

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

const FAILED_SAMPLE = 100;

export async function syncGroups(deps: SyncDeps, opts: SyncOptions): Promise<SyncResult> {
  const { store, log } = deps;
  const newId = deps.newRunId ?? randomUUID;
  const invocationId = newId();
  const remainingMs = deps.remainingMs ?? (() => Number.POSITIVE_INFINITY);
  const reserveMs = opts.timeReserveMs ?? 90_000;
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const checkpointEvery = Math.max(1, opts.checkpointEvery ?? 25);
  const at = deps.now().toISOString();
  const result: SyncResult = {
    runId: invocationId,
    invocationId,
    startedAt: at,
    finishedAt: at,
    resumed: false,
    complete: false,
    remaining: 0,
    groups: 0,
    synced: 0,
    gone: 0,
    failed: [],
    discoveryFailures: 0,
    unresolvedExternalIds: 0,
    membershipsWritten: 0,
    exitsObserved: 0,
    lockSkipped: false,
    run: null,
  };

  // The lock outlives this invocation by 30 s at most, and a crashed long CLI run blocks others for 30 min
  // at most: checkpoints renew it well before that.
  const lockTtl = () => {
    const left = remainingMs();
    if (opts.lockTtlSeconds !== undefined) return opts.lockTtlSeconds;
    return Number.isFinite(left) ? Math.min(1800, Math.max(60, Math.ceil(left / 1000) + 30)) : 900;
  };
  if (!(await store.acquireSyncLock(invocationId, lockTtl()))) {
    log.warn("sync skipped: another run holds the lock", { invocationId });
    return { ...result, lockSkipped: true, finishedAt: deps.now().toISOString() };
  }

  try {
    // ---- resume the unfinished run, or discover and start a new one ----
    let run: SyncRunState | null = null;
    let list: string[] = [];
    let fetched = new Map<string, CapillaryGroup>();
    const last = await store.getSyncRun();
    if (last !== null && last.status === "running") {
      try {
        list = await store.getSyncRunList(last.runId, last.total);
        run = { ...last, invocations: last.invocations + 1 };
        result.resumed = true;
        log.info("sync run resumed", {
          runId: run.runId,
          invocationId,
          cursor: run.cursor,
          total: run.total,
          invocations: run.invocations,
        });
      } catch (e) {
        log.warn("unfinished sync run unreadable; starting a new run", {
          runId: last.runId,
          ...errorAttributes(e),
        });
      }
    }
    if (run === null) {
      const discovery = await discover(deps, opts, concurrency);
      result.discoveryFailures = discovery.failures;
      result.unresolvedExternalIds = discovery.unresolved;
      log.info("sync discovery done", {
        invocationId,
        groups: discovery.ids.length,
        discoveryFailures: discovery.failures,
        unresolvedExternalIds: discovery.unresolved,
      });
      if (discovery.ids.length === 0 && discovery.failures > 0 && !opts.syncKnownGroups) {
        return { ...result, finishedAt: deps.now().toISOString() };
      }
      list = discovery.ids;
      fetched = discovery.fetched;
      run = {
        runId: invocationId,
        startedAt: at,
        updatedAt: at,
        status: "running",
        total: list.length,
        cursor: 0,
        sweepStart: null,
        invocations: 1,
        synced: 0,
        gone: 0,
        failed: 0,
        failedSample: [],
        membershipsWritten: 0,
        exitsObserved: 0,
        discoveryFailures: discovery.failures,
        unresolvedExternalIds: discovery.unresolved,
      };
      await store.putSyncRun(invocationId, run, list);
    }
    result.runId = run.runId;
    result.startedAt = run.startedAt;
    result.discoveryFailures = run.discoveryFailures;
    result.unresolvedExternalIds = run.unresolvedExternalIds;

    // ---- work through the list from the cursor, checkpointing; then the known-groups phase ----
    const state = run;
    const failedHere = new Set<string>();
    const handled = new Set<string>();
    const save = async (withList = false) => {
      state.updatedAt = deps.now().toISOString();
      // Heartbeat: a run longer than the lock's ttl (a CLI run at 10 requests/s) keeps its lock.
      if (!(await store.acquireSyncLock(invocationId, lockTtl()))) {
        throw new SyncError("SYNC_LOCK_LOST", `invocation ${invocationId} lost the sync lock`);
      }
      await store.putSyncRun(
        invocationId,
        { ...state, failedSample: [...state.failedSample] },
        withList ? list : undefined,
      );
    };
    let outOfTime = false;
    for (;;) {
      outOfTime = await work(state, list, {
        concurrency,
        checkpointEvery,
        hasTime: () => remainingMs() >= reserveMs,
        save,
        one: async (groupId) => {
          handled.add(groupId);
          try {
            const outcome = await syncGroup(deps, groupId, fetched.get(groupId));
            fetched.delete(groupId);
            result.synced++;
            state.synced++;
            if (outcome.gone) {
              result.gone++;
              state.gone++;
            }
            result.membershipsWritten += outcome.written;
            state.membershipsWritten += outcome.written;
            result.exitsObserved += outcome.exits;
            state.exitsObserved += outcome.exits;
            log.info("group synced", {
              runId: state.runId,
              groupId,
              gone: outcome.gone,
              written: outcome.written,
              exits: outcome.exits,
            });
          } catch (e) {
            failedHere.add(groupId);
            state.failed++;
            if (state.failedSample.length < FAILED_SAMPLE) state.failedSample.push(groupId);
            log.warn("group sync failed; last known state kept", {
              runId: state.runId,
              groupId,
              ...errorAttributes(e),
            });
          }
        },
      });
      if (outOfTime || state.sweepStart !== null) break;
      // Every discovered group is done: only now add the known groups this run did not sync.
      state.sweepStart = list.length;
      if (opts.syncKnownGroups) {
        const extra = await knownNotSynced(store, state.startedAt, new Set(list));
        if (extra.length > 0) {
          list = [...list, ...extra];
          state.total = list.length;
          log.info("sync known groups phase", { runId: state.runId, groups: extra.length });
          await save(true);
          continue;
        }
      }
      break;
    }
    if (!outOfTime) state.status = "complete";
    await save();

    result.groups = handled.size;
    result.failed = [...handled].filter((id) => failedHere.has(id));
    result.complete = state.status === "complete";
    result.remaining = state.total - state.cursor;
    result.run = { ...state, failedSample: [...state.failedSample] };
  } finally {
    await store.releaseSyncLock(invocationId).catch((e: unknown) => {
      log.warn("sync lock release failed; it expires by itself", { invocationId, ...errorAttributes(e) });
    });
  }

  result.finishedAt = deps.now().toISOString();
  log.info(result.complete ? "sync done" : "sync paused; the run continues in a later invocation", {
    runId: result.runId,
    invocationId,
    groups: result.groups,
    synced: result.synced,
    gone: result.gone,
    failed: result.failed.length,
    membershipsWritten: result.membershipsWritten,
    exitsObserved: result.exitsObserved,
    remaining: result.remaining,
  });
  return result;
}

/**
 * Runs `one` over list[cursor..] with `concurrency` workers, stopping to take new entries when `hasTime`
 * says no. The cursor only moves over a contiguous prefix of finished entries, so a crash re-does at most
 * the entries in flight (re-syncing a group is harmless). Returns true when it stopped for lack of time.
 */
async function work(
  state: SyncRunState,
  list: readonly string[],
  o: {
    concurrency: number;
    checkpointEvery: number;
    hasTime: () => boolean;
    save: () => Promise<void>;
    one: (groupId: string) => Promise<void>;
  },
): Promise<boolean> {
  let next = state.cursor;
  let stopped = false;
  let sinceSave = 0;
  const finished = new Set<number>();
  let saving: Promise<void> = Promise.resolve();
  let failed = false;
  const worker = async () => {
    while (next < list.length && !failed) {
      if (!o.hasTime()) {
        stopped = true;
        return;
      }
      const i = next++;
      await o.one(list[i] as string);
      finished.add(i);
      while (finished.has(state.cursor)) finished.delete(state.cursor++);
      if (++sinceSave >= o.checkpointEvery) {
        sinceSave = 0;
        // Serialised: each save writes the state as it is when its turn comes, never an older one.
        saving = saving.then(o.save);
        await saving.catch((e: unknown) => {
          failed = true; // e.g. SYNC_LOCK_LOST: the other workers take no new group
          throw e;
        });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency, list.length - next) }, worker));
  await saving;
  return stopped && state.cursor < list.length;
}

/** Known groups, not GONE, that were not synced since the run started and are not in its list. */
async function knownNotSynced(
  store: MembershipStore,
  runStartedAt: string,
  inList: ReadonlySet<string>,
): Promise<string[]> {
  const since = Date.parse(runStartedAt);
  return (await store.listGroupMetas())
    .filter((m) => m.status !== "GONE" && Date.parse(m.syncedAt) < since && !inList.has(m.groupId))
    .map((m) => m.groupId);
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

  for (const [index, fields] of (opts.extendedFieldSearches ?? []).entries()) {
    let found = 0;
    try {
      for await (const ref of api.extendedFieldSearch(fields)) {
        ids.add(canonicalId(ref.groupId));
        found++;
      }
    } catch (e) {
      failures++;
      log.warn("extended field search failed", { searchIndex: index, found, ...errorAttributes(e) });
      continue;
    }
    log.info("extended field search done", { searchIndex: index, found });
  }

  if (deps.extraGroupIds) {
    try {
      const { groupIds, ...counts } = await deps.extraGroupIds();
      let added = 0;
      for (const id of groupIds) {
        const c = canonicalId(id);
        if (!ids.has(c)) added++;
        ids.add(c);
      }
      log.info("membership csv discovery done", { ...counts, groups: groupIds.length, added });
    } catch (e) {
      failures++;
      log.warn("membership csv discovery failed", errorAttributes(e));
    }
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
