import {
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
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
});
export type PeriodState = z.infer<typeof periodStateSchema>;

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

  /** Write the whole entry (PROCESSING at the start, COMMITTED / SKIPPED / FAILED at the end). */
  async put(entry: LedgerEntry): Promise<void> {
    await this.ddb.send(
      new PutCommand({
        TableName: this.table,
        Item: { ...keys.ledger(entry.fileId), gsi1pk: "LEDGER", gsi1sk: entry.fileId, ...entry },
      }),
    );
  }

  /** Every ledger entry, following LastEvaluatedKey to the end. */
  async list(): Promise<LedgerEntry[]> {
    const out: LedgerEntry[] = [];
    for await (const item of this.queryIndex("LEDGER")) out.push(ledgerEntrySchema.parse(item));
    return out;
  }

  async markDirty(periods: readonly string[], at: string): Promise<void> {
    for (const period of periods) {
      await this.ddb.send(
        new UpdateCommand({
          TableName: this.table,
          Key: keys.period(period),
          UpdateExpression:
            "SET #p = :p, gsi1pk = :g, gsi1sk = :p, dirtySince = if_not_exists(dirtySince, :at)",
          ExpressionAttributeNames: { "#p": "period" },
          ExpressionAttributeValues: { ":p": period, ":g": "PERIOD", ":at": at },
        }),
      );
    }
  }

  /** Record a published report; clears the dirty mark only when nothing was marked after the run started. */
  async markReported(period: string, runId: string, startedAt: string, at: string): Promise<void> {
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
          ConditionExpression: "attribute_exists(dirtySince) AND dirtySince <= :s",
          ExpressionAttributeValues: { ":s": startedAt },
        }),
      );
    } catch (e) {
      if ((e as { name?: string }).name !== "ConditionalCheckFailedException") throw e;
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
