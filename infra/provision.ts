import {
  CreateTableCommand,
  type CreateTableCommandOutput,
  DescribeTableCommand,
  type DescribeTableCommandOutput,
  type DynamoDBClient,
  ResourceInUseException,
} from "@aws-sdk/client-dynamodb";
import { CreateBucketCommand, type S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { tableDefinition } from "../lib/adapters/table.ts";

/** Creates the buckets and the table of the app (local stack, demo, tests). Idempotent. */

export interface ProvisionNames {
  exportsBucket: string;
  reportsBucket: string;
  tableName: string;
}

export interface ProvisionClients {
  s3: S3Client;
  ddb: DynamoDBClient | DynamoDBDocumentClient;
}

export const DEFAULT_NAMES: ProvisionNames = {
  exportsBucket: "glr-exports",
  reportsBucket: "glr-reports",
  tableName: "glr-table",
};

export class ProvisionError extends Error {
  readonly code: "TABLE_NOT_ACTIVE" | "TABLE_DEFINITION_MISMATCH";
  constructor(code: ProvisionError["code"], message: string) {
    super(message);
    this.name = "ProvisionError";
    this.code = code;
  }
}

async function ensureBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (e) {
    if (e instanceof S3ServiceException && e.name === "BucketAlreadyOwnedByYou") return;
    throw e;
  }
}

// DynamoDBDocumentClient accepts every low-level command (it shares the wrapped client's stack).
function describe(ddb: ProvisionClients["ddb"], tableName: string): Promise<DescribeTableCommandOutput> {
  const cmd = new DescribeTableCommand({ TableName: tableName });
  return ddb instanceof DynamoDBDocumentClient ? ddb.send(cmd) : ddb.send(cmd);
}

function create(ddb: ProvisionClients["ddb"], tableName: string): Promise<CreateTableCommandOutput> {
  const cmd = new CreateTableCommand(tableDefinition(tableName));
  return ddb instanceof DynamoDBDocumentClient ? ddb.send(cmd) : ddb.send(cmd);
}

async function ensureTable(
  ddb: ProvisionClients["ddb"],
  tableName: string,
  timeoutMs: number,
): Promise<void> {
  const def = tableDefinition(tableName);
  try {
    await create(ddb, tableName);
  } catch (e) {
    if (!(e instanceof ResourceInUseException)) throw e;
  }
  const wanted = (def.GlobalSecondaryIndexes ?? []).map((g) => g.IndexName ?? "");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { Table } = await describe(ddb, tableName);
    const indexes = Table?.GlobalSecondaryIndexes ?? [];
    const missing = wanted.filter((name) => !indexes.some((g) => g.IndexName === name));
    if (missing.length > 0) {
      throw new ProvisionError(
        "TABLE_DEFINITION_MISMATCH",
        `table ${tableName} exists without index ${missing.join(", ")}; delete it and provision again`,
      );
    }
    const active = Table?.TableStatus === "ACTIVE" && indexes.every((g) => g.IndexStatus === "ACTIVE");
    if (active) return;
    if (Date.now() > deadline) {
      throw new ProvisionError("TABLE_NOT_ACTIVE", `table ${tableName} not ACTIVE after ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function provision(
  clients: ProvisionClients,
  names: ProvisionNames,
  opts: { timeoutMs?: number } = {},
): Promise<void> {
  await Promise.all([
    ensureBucket(clients.s3, names.exportsBucket),
    ensureBucket(clients.s3, names.reportsBucket),
    ensureTable(clients.ddb, names.tableName, opts.timeoutMs ?? 60_000),
  ]);
}
