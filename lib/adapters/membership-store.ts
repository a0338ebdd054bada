import {
  BatchWriteCommand,
  type BatchWriteCommandOutput,
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
  type ScanCommandInput,
  TransactWriteCommand,
} from "@aws-sdk/lib-dynamodb";
import { z } from "zod";
import type { GroupMeta, Membership } from "../domain/membership.ts";
import type { MembershipStore, SyncRunState } from "../ports/membership-store.ts";
import { GSI1, keys } from "./table.ts";

/**
 * Group metas (`GROUP#<id>` / `META`) and memberships (`GROUP#<id>` / `MEMBER#<userId>`, one item each, with
 * GSI1 `MEMBER#<userId>` / `GROUP#<id>`) in the single table, the sync lock (`SYNC#LOCK` / `LOCK`) and the
 * sync run checkpoint (`SYNC#RUN` / `RUN`, its list in `SYNC#RUN` / `LIST#00000`... chunks of 2,000 entries
 * that carry the run id: a later, shorter list leaves stale chunks behind that are never read).
 * Group metas also carry GSI1 `GROUPS` / `<groupId>` so that listing them is a Query, not a Scan.
 * Every item read is validated with zod before use.
 */

const instant = z.iso.datetime({ offset: true });

export const membershipSchema = z.object({
  groupId: z.string().min(1),
  userId: z.string().min(1),
  role: z.string().nullable(),
  primaryMember: z.boolean(),
  defaultGroup: z.boolean(),
  active: z.boolean(),
  joinedOn: z.iso.date().nullable(),
  firstSeenAt: instant,
  lastSeenAt: instant,
  exitSeenAt: instant.nullable(),
  firstSeenExited: z.boolean(),
  previousStints: z.array(z.object({ joinedOn: z.iso.date().nullable(), exitSeenAt: instant })),
}) satisfies z.ZodType<Membership>;

export const groupMetaSchema = z.object({
  groupId: z.string().min(1),
  externalId: z.string().nullable(),
  name: z.string(),
  status: z.string().min(1),
  programs: z.array(
    z.object({ programId: z.string(), loyaltyPoints: z.string(), currentSlab: z.string().nullable() }),
  ),
  syncedAt: instant,
}) satisfies z.ZodType<GroupMeta>;

const syncRunSchema = z.object({
  runId: z.string().min(1),
  startedAt: instant,
  updatedAt: instant,
  status: z.enum(["running", "complete"]),
  total: z.number().int().min(0),
  cursor: z.number().int().min(0),
  sweepStart: z.number().int().min(0).nullable(),
  invocations: z.number().int().min(0),
  synced: z.number().int().min(0),
  gone: z.number().int().min(0),
  failed: z.number().int().min(0),
  failedSample: z.array(z.string()),
  membershipsWritten: z.number().int().min(0),
  exitsObserved: z.number().int().min(0),
  discoveryFailures: z.number().int().min(0),
  unresolvedExternalIds: z.number().int().min(0),
}) satisfies z.ZodType<SyncRunState>;

const runListChunkSchema = z.object({ runId: z.string(), entries: z.array(z.string()) });

const GROUPS_INDEX_PK = "GROUPS";
const RUN_PK = "SYNC#RUN";
const RUN_KEY = { pk: RUN_PK, sk: "RUN" } as const;
const RUN_LIST_CHUNK = 2_000;
/** Chunk puts per transaction, next to the lock's condition check (DynamoDB allows 100 actions). */
const CHUNKS_PER_TRANSACTION = 24;
const runListKey = (i: number) => ({ pk: RUN_PK, sk: `LIST#${String(i).padStart(5, "0")}` });
const LOCK_KEY = { pk: "SYNC#LOCK", sk: "LOCK" } as const;
const BATCH_SIZE = 25;

export type MembershipStoreErrorCode =
  | "DDB_UNPROCESSED_ITEMS"
  | "DDB_INVALID_ITEM"
  | "SYNC_LOCK_LOST"
  | "SYNC_RUN_LIST_INVALID";

export class MembershipStoreError extends Error {
  constructor(
    readonly code: MembershipStoreErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "MembershipStoreError";
  }
}

export interface MembershipStoreOptions {
  /** BatchWrite attempts per batch (first try included) before giving up. Default 8. */
  maxAttempts?: number;
  /** Backoff: delay = random() * min(maxDelayMs, baseDelayMs * 2^retry). Defaults 50 ms and 5 s. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  /** BatchWrite requests in flight at once. Default 4. */
  writeConcurrency?: number;
  /** Epoch milliseconds, for the lock's expiry. */
  nowMs?: () => number;
}

type WriteRequest = NonNullable<BatchWriteCommandOutput["UnprocessedItems"]>[string][number];

function parseOrThrow<T>(schema: z.ZodType<T>, item: Record<string, unknown>, what: string): T {
  const r = schema.safeParse(item);
  if (r.success) return r.data;
  // Keys only: never the attribute values (they could hold personal data).
  const paths = r.error.issues.map((i) => i.path.join(".")).join(", ");
  throw new MembershipStoreError(
    "DDB_INVALID_ITEM",
    `invalid ${what} item ${String(item.pk)}/${String(item.sk)}: ${paths}`,
  );
}

export function createMembershipStore(
  ddb: DynamoDBDocumentClient,
  tableName: string,
  options: MembershipStoreOptions = {},
): MembershipStore {
  const maxAttempts = options.maxAttempts ?? 8;
  const baseDelayMs = options.baseDelayMs ?? 50;
  const maxDelayMs = options.maxDelayMs ?? 5_000;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  const nowMs = options.nowMs ?? Date.now;
  const writeConcurrency = Math.max(1, options.writeConcurrency ?? 4);

  /** Every item of a Query, following LastEvaluatedKey to the end (a fresh input per page). */
  async function* queryAll(input: QueryCommandInput): AsyncGenerator<Record<string, unknown>> {
    let start: Record<string, unknown> | undefined;
    do {
      const r = await ddb.send(
        new QueryCommand(start ? { ...input, ExclusiveStartKey: start } : { ...input }),
      );
      yield* r.Items ?? [];
      start = r.LastEvaluatedKey;
    } while (start);
  }

  async function* scanAll(input: ScanCommandInput): AsyncGenerator<Record<string, unknown>> {
    let start: Record<string, unknown> | undefined;
    do {
      const r = await ddb.send(
        new ScanCommand(start ? { ...input, ExclusiveStartKey: start } : { ...input }),
      );
      yield* r.Items ?? [];
      start = r.LastEvaluatedKey;
    } while (start);
  }

  async function writeBatch(requests: WriteRequest[]): Promise<void> {
    let pending = requests;
    for (let attempt = 1; ; attempt++) {
      const r = await ddb.send(new BatchWriteCommand({ RequestItems: { [tableName]: pending } }));
      pending = r.UnprocessedItems?.[tableName] ?? [];
      if (pending.length === 0) return;
      if (attempt >= maxAttempts) {
        throw new MembershipStoreError(
          "DDB_UNPROCESSED_ITEMS",
          `${pending.length} items still unprocessed after ${attempt} BatchWrite attempts`,
        );
      }
      await sleep(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));
    }
  }

  return {
    async getGroupMemberships(groupId) {
      const out: Membership[] = [];
      const items = queryAll({
        TableName: tableName,
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues: { ":pk": keys.groupMeta(groupId).pk, ":sk": "MEMBER#" },
        ConsistentRead: true,
      });
      for await (const item of items) out.push(parseOrThrow(membershipSchema, item, "membership"));
      return out;
    },

    async putMemberships(items) {
      const unique = new Map<string, Membership>();
      for (const m of items) {
        const k = keys.membership(m.groupId, m.userId);
        const id = `${k.pk}\u0000${k.sk}`;
        unique.delete(id); // last wins, in the position of the last occurrence
        unique.set(id, m);
      }
      const requests: WriteRequest[] = [...unique.values()].map((m) => ({
        PutRequest: { Item: { ...keys.membership(m.groupId, m.userId), type: "MEMBERSHIP", ...m } },
      }));
      const batches: WriteRequest[][] = [];
      for (let i = 0; i < requests.length; i += BATCH_SIZE) batches.push(requests.slice(i, i + BATCH_SIZE));
      // A few batches in flight; each retries its own UnprocessedItems. The first failure is thrown.
      const queue = batches[Symbol.iterator]();
      const worker = async () => {
        for (let b = queue.next(); !b.done; b = queue.next()) await writeBatch(b.value);
      };
      await Promise.all(Array.from({ length: Math.min(writeConcurrency, batches.length) }, worker));
      return requests.length;
    },

    async getGroupMeta(groupId) {
      const r = await ddb.send(
        new GetCommand({ TableName: tableName, Key: keys.groupMeta(groupId), ConsistentRead: true }),
      );
      return r.Item ? parseOrThrow(groupMetaSchema, r.Item, "group meta") : null;
    },

    async putGroupMeta(meta) {
      await ddb.send(
        new PutCommand({
          TableName: tableName,
          Item: {
            ...keys.groupMeta(meta.groupId),
            gsi1pk: GROUPS_INDEX_PK,
            gsi1sk: meta.groupId,
            type: "GROUP",
            ...meta,
          },
        }),
      );
    },

    async listGroupMetas() {
      const out: GroupMeta[] = [];
      const items = queryAll({
        TableName: tableName,
        IndexName: GSI1,
        KeyConditionExpression: "gsi1pk = :pk",
        ExpressionAttributeValues: { ":pk": GROUPS_INDEX_PK },
      });
      for await (const item of items) out.push(parseOrThrow(groupMetaSchema, item, "group meta"));
      return out;
    },

    async *listAllMemberships() {
      const items = scanAll({
        TableName: tableName,
        FilterExpression: "begins_with(pk, :pk) AND begins_with(sk, :sk)",
        ExpressionAttributeValues: { ":pk": "GROUP#", ":sk": "MEMBER#" },
      });
      for await (const item of items) yield parseOrThrow(membershipSchema, item, "membership");
    },

    async acquireSyncLock(runId, ttlSeconds) {
      const now = Math.floor(nowMs() / 1000);
      try {
        await ddb.send(
          new PutCommand({
            TableName: tableName,
            Item: {
              ...LOCK_KEY,
              runId,
              acquiredAt: new Date(now * 1000).toISOString(),
              expiresAt: now + ttlSeconds,
            },
            // The holder itself may renew (heartbeat): the expiry moves, the lock never changes hands.
            ConditionExpression: "attribute_not_exists(pk) OR expiresAt < :now OR runId = :runId",
            ExpressionAttributeValues: { ":now": now, ":runId": runId },
          }),
        );
        return true;
      } catch (e) {
        if (isConditionalCheckFailed(e)) return false;
        throw e;
      }
    },

    async releaseSyncLock(runId) {
      try {
        await ddb.send(
          new DeleteCommand({
            TableName: tableName,
            Key: LOCK_KEY,
            ConditionExpression: "runId = :runId",
            ExpressionAttributeValues: { ":runId": runId },
          }),
        );
        return true;
      } catch (e) {
        if (isConditionalCheckFailed(e)) return false;
        throw e;
      }
    },

    async getSyncRun() {
      const r = await ddb.send(new GetCommand({ TableName: tableName, Key: RUN_KEY, ConsistentRead: true }));
      return r.Item ? parseOrThrow(syncRunSchema, r.Item, "sync run") : null;
    },

    async getSyncRunList(runId, total) {
      const out: string[] = [];
      const items = queryAll({
        TableName: tableName,
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :sk)",
        ExpressionAttributeValues: { ":pk": RUN_PK, ":sk": "LIST#" },
        ConsistentRead: true,
      });
      for await (const item of items) {
        if (out.length >= total) break;
        const chunk = parseOrThrow(runListChunkSchema, item, "sync run list");
        if (chunk.runId !== runId) break;
        out.push(...chunk.entries);
      }
      if (out.length !== total) {
        throw new MembershipStoreError(
          "SYNC_RUN_LIST_INVALID",
          `sync run ${runId}: ${out.length} list entries stored, ${total} expected`,
        );
      }
      return out;
    },

    async putSyncRun(owner, state, list) {
      const lockHeld = {
        ConditionCheck: {
          TableName: tableName,
          Key: LOCK_KEY,
          ConditionExpression: "runId = :owner",
          ExpressionAttributeValues: { ":owner": owner },
        },
      };
      const send = async (puts: Record<string, unknown>[]) => {
        try {
          await ddb.send(
            new TransactWriteCommand({
              TransactItems: [lockHeld, ...puts.map((Item) => ({ Put: { TableName: tableName, Item } }))],
            }),
          );
        } catch (e) {
          if (e instanceof Error && e.name === "TransactionCanceledException") {
            const reasons = (e as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
            if (reasons[0]?.Code === "ConditionalCheckFailed") {
              throw new MembershipStoreError(
                "SYNC_LOCK_LOST",
                `sync run ${state.runId}: this invocation no longer holds the sync lock`,
              );
            }
          }
          throw e;
        }
      };
      if (list !== undefined) {
        const chunks: Record<string, unknown>[] = [];
        for (let i = 0; i * RUN_LIST_CHUNK < list.length; i++) {
          const entries = list.slice(i * RUN_LIST_CHUNK, (i + 1) * RUN_LIST_CHUNK);
          chunks.push({ ...runListKey(i), type: "SYNC_RUN_LIST", runId: state.runId, entries });
        }
        for (let i = 0; i < chunks.length; i += CHUNKS_PER_TRANSACTION) {
          await send(chunks.slice(i, i + CHUNKS_PER_TRANSACTION));
        }
      }
      await send([{ ...RUN_KEY, type: "SYNC_RUN", ...state }]);
    },
  };
}

function isConditionalCheckFailed(e: unknown): boolean {
  return e instanceof Error && e.name === "ConditionalCheckFailedException";
}
