import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { z } from "zod";
import { GSI1, keys } from "./table.ts";

/**
 * The ledger: one item per delivered object (`FILE#<fileId>` / `LEDGER`), and one state item per report
 * period (`PERIOD#YYYY-MM` / `STATE`). Both carry GSI1 keys (`LEDGER` / `PERIOD`) so that listing them is a
 * Query, never a table Scan.
 */

const templateName = z.enum(["points", "points_redemption_summary", "members", "rewards"]);

export const entryStatsSchema = z.object({
  name: z.string(),
  template: templateName.nullable(),
  rowsRead: z.number().int(),
  rowsAccepted: z.number().int(),
  rowsRejected: z.number().int(),
  firstRejectReason: z.string().nullable(),
  /** Set when the entry was rejected as a whole (unknown header, unsafe zip entry...). */
  error: z.string().nullable(),
  /** Optional capabilities of the entry's columns, e.g. "event_name". */
  columns: z.array(z.string()).default([]),
});
export type EntryStats = z.infer<typeof entryStatsSchema>;

export const stagedObjectSchema = z.object({
  key: z.string(),
  dataset: templateName,
  period: z.string(),
  part: z.number().int(),
  rows: z.number().int(),
  /** Key-hash parts the file was staged into (absent in entries written before it was recorded). */
  parts: z.number().int().positive().optional(),
});
export type StagedObject = z.infer<typeof stagedObjectSchema>;

/** REJECTED: the file as a whole cannot be read (zip bomb, corrupt packaging); final, not retried. */
export const ledgerStatus = z.enum(["PROCESSING", "COMMITTED", "SKIPPED", "REJECTED", "FAILED"]);
export type LedgerStatus = z.infer<typeof ledgerStatus>;

export const ledgerEntrySchema = z.object({
  fileId: z.string(),
  bucket: z.string(),
  sourceKey: z.string(),
  eTag: z.string(),
  size: z.number(),
  sequencer: z.string(),
  deliveredAt: z.string(),
  status: ledgerStatus,
  reason: z.string().nullable().default(null),
  attempts: z.number().int().default(0),
  entries: z.array(entryStatsSchema).default([]),
  staged: z.array(stagedObjectSchema).default([]),
  periods: z.array(z.string()).default([]),
  rejectsKey: z.string().nullable().default(null),
  startedAt: z.string(),
  finishedAt: z.string().nullable().default(null),
});
export type LedgerEntry = z.infer<typeof ledgerEntrySchema>;

export const periodStateSchema = z.object({
  period: z.string(),
  dirtySince: z.string().nullable().default(null),
  lastRunId: z.string().nullable().default(null),
  lastReportAt: z.string().nullable().default(null),
  /** Incremented by every markDirty: a run clears the dirty mark only if no mark came after it looked. */
  dirtyVersion: z.number().int().optional(),
  /** When the last mark came (the newest accepted file of the period). */
  lastMarkedAt: z.string().nullable().optional(),
  /** Every file committed with rows of this period (ids), read consistently: no GSI lag can hide one. */
  fileIds: z
    .union([z.set(z.string()), z.array(z.string())])
    .transform((v) => [...v].sort())
    .optional(),
});
export type PeriodState = z.infer<typeof periodStateSchema>;

const AGGREGATE_LOCK = { pk: "AGGREGATE#LOCK", sk: "LOCK" } as const;

export class LedgerStore {
  constructor(
    private readonly ddb: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async get(fileId: string): Promise<LedgerEntry | null> {
    const r = await this.ddb.send(
      new GetCommand({ TableName: this.table, Key: keys.ledger(fileId), ConsistentRead: true }),
    );
    return r.Item ? ledgerEntrySchema.parse(r.Item) : null;
  }

  /**
   * Write the whole entry (PROCESSING at the start, COMMITTED / SKIPPED / FAILED at the end). With
   * `unlessCommitted`, the write happens only if the file is not COMMITTED already (a concurrent delivery
   * of the same version committed it): false when refused.
   */
  async put(entry: LedgerEntry, opts: { unlessCommitted?: boolean } = {}): Promise<boolean> {
    try {
      await this.ddb.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...keys.ledger(entry.fileId), gsi1pk: "LEDGER", gsi1sk: entry.fileId, ...entry },
          ...(opts.unlessCommitted
            ? {
                ConditionExpression: "attribute_not_exists(#s) OR #s <> :committed",
                ExpressionAttributeNames: { "#s": "status" },
                ExpressionAttributeValues: { ":committed": "COMMITTED" },
              }
            : {}),
        }),
      );
      return true;
    } catch (e) {
      if (opts.unlessCommitted && (e as { name?: string }).name === "ConditionalCheckFailedException")
        return false;
      throw e;
    }
  }

  /** Every ledger entry, following LastEvaluatedKey to the end. */
  async list(): Promise<LedgerEntry[]> {
    const out: LedgerEntry[] = [];
    for await (const item of this.queryIndex("LEDGER")) out.push(ledgerEntrySchema.parse(item));
    return out;
  }

  /**
   * Mark periods dirty after `fileId` was committed with rows in them. Call it after the COMMITTED ledger
   * write: a run that looks at the period state afterwards is sure to find the file (by id, consistently).
   */
  async markDirty(periods: readonly string[], at: string, fileId?: string): Promise<void> {
    for (const period of periods) {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.period(period),
          UpdateExpression: `SET #p = :p, gsi1pk = :g, gsi1sk = :p, dirtySince = if_not_exists(dirtySince, :at), lastMarkedAt = :at ADD dirtyVersion :one${fileId ? ", fileIds :f" : ""}`,
          ExpressionAttributeNames: { "#p": "period" },
          ExpressionAttributeValues: {
            ":p": period,
            ":g": "PERIOD",
            ":at": at,
            ":one": 1,
            ...(fileId ? { ":f": new Set([fileId]) } : {}),
          },
        }),
      );
    }
  }

  /** One period's state, read consistently (null when the period was never marked). */
  async getPeriod(period: string): Promise<PeriodState | null> {
    const r = await this.ddb.send(
      new GetCommand({ TableName: this.table, Key: keys.period(period), ConsistentRead: true }),
    );
    return r.Item ? periodStateSchema.parse(r.Item) : null;
  }

  /**
   * Record a published report. The dirty mark is cleared only when no markDirty came after the run read
   * the period state (`seenVersion`: its dirtyVersion then), so a file accepted during the run keeps its
   * period dirty for the next run. Without `seenVersion`: cleared when marked before the run started.
   */
  async markReported(
    period: string,
    runId: string,
    startedAt: string,
    at: string,
    seenVersion?: number,
  ): Promise<void> {
    await this.ddb.send(
      new UpdateCommand({
        TableName: this.table,
        Key: keys.period(period),
        UpdateExpression: "SET #p = :p, gsi1pk = :g, gsi1sk = :p, lastRunId = :r, lastReportAt = :at",
        ExpressionAttributeNames: { "#p": "period" },
        ExpressionAttributeValues: { ":p": period, ":g": "PERIOD", ":r": runId, ":at": at },
      }),
    );
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.period(period),
          UpdateExpression: "REMOVE dirtySince",
          ...(seenVersion === undefined
            ? {
                ConditionExpression:
                  "attribute_exists(dirtySince) AND dirtySince <= :s AND (attribute_not_exists(lastMarkedAt) OR lastMarkedAt <= :s)",
                ExpressionAttributeValues: { ":s": startedAt },
              }
            : {
                ConditionExpression:
                  "attribute_exists(dirtySince) AND (dirtyVersion = :v OR (attribute_not_exists(dirtyVersion) AND :v = :zero))",
                ExpressionAttributeValues: { ":v": seenVersion, ":zero": 0 },
              }),
        }),
      );
    } catch (e) {
      if ((e as { name?: string }).name !== "ConditionalCheckFailedException") throw e;
    }
  }

  /**
   * The aggregation lock (`AGGREGATE#LOCK` / `LOCK`): one run at a time, so two runs never interleave
   * their publications. Expires after `ttlSeconds` (a crashed run does not block forever); false when
   * another unexpired owner holds it.
   */
  async acquireAggregateLock(owner: string, nowMs: number, ttlSeconds: number): Promise<boolean> {
    const now = Math.floor(nowMs / 1000);
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: AGGREGATE_LOCK,
          UpdateExpression: "SET lockOwner = :o, expiresAt = :e, acquiredAt = :a",
          ConditionExpression: "attribute_not_exists(lockOwner) OR expiresAt < :now OR lockOwner = :o",
          ExpressionAttributeValues: {
            ":o": owner,
            ":e": now + ttlSeconds,
            ":a": new Date(nowMs).toISOString(),
            ":now": now,
          },
        }),
      );
      return true;
    } catch (e) {
      if ((e as { name?: string }).name === "ConditionalCheckFailedException") return false;
      throw e;
    }
  }

  /** Releases the lock if `owner` still holds it; false when it did not. */
  async releaseAggregateLock(owner: string): Promise<boolean> {
    try {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: AGGREGATE_LOCK,
          UpdateExpression: "REMOVE lockOwner, expiresAt",
          ConditionExpression: "lockOwner = :o",
          ExpressionAttributeValues: { ":o": owner },
        }),
      );
      return true;
    } catch (e) {
      if ((e as { name?: string }).name === "ConditionalCheckFailedException") return false;
      throw e;
    }
  }

  async listPeriods(): Promise<PeriodState[]> {
    const out: PeriodState[] = [];
    for await (const item of this.queryIndex("PERIOD")) out.push(periodStateSchema.parse(item));
    return out;
  }

  private async *queryIndex(pk: string): AsyncGenerator<Record<string, unknown>> {
    let start: Record<string, unknown> | undefined;
    do {
      const r = await this.ddb.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: GSI1,
          KeyConditionExpression: "gsi1pk = :pk",
          ExpressionAttributeValues: { ":pk": pk },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of r.Items ?? []) yield item;
      start = r.LastEvaluatedKey;
    } while (start);
  }
}
