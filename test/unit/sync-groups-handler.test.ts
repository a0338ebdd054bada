import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import {
  BatchWriteCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
} from "@aws-sdk/lib-dynamodb";
import type { Context, ScheduledEvent } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { CapillaryApi, CapillaryGroup, CapillaryGroupRef, CapillaryMember } from "../../lib/ports.ts";

const env = {
  AWS_REGION: "eu-west-1",
  DYNAMODB_ENDPOINT: "http://127.0.0.1:1",
  EXPORTS_BUCKET: "exports-bucket",
  REPORTS_BUCKET: "reports-bucket",
  TABLE_NAME: "table-unit",
  CAPILLARY_BASE_URL: "http://127.0.0.1:1",
  CAPILLARY_AUTH: "basic",
  CAPILLARY_USERNAME: "till",
  CAPILLARY_PASSWORD: "secret",
  CAPILLARY_GROUP_IDS: "11, 12",
  CAPILLARY_GROUP_EXTERNAL_IDS: "",
  CAPILLARY_GROUP_SEARCH: "",
  POWERTOOLS_LOG_LEVEL: "CRITICAL",
};

const ddb = mockClient(DynamoDBDocumentClient);
const s3 = mockClient(S3Client);
const saved = { ...process.env };

class Api implements CapillaryApi {
  constructor(private readonly broken: Set<string>) {}
  async getGroup(ref: { id: string } | { externalId: string }): Promise<CapillaryGroup | null> {
    const id = "id" in ref ? ref.id : ref.externalId;
    if (this.broken.has(id)) throw Object.assign(new Error("down"), { code: "HTTP_503" });
    return {
      id,
      externalId: null,
      groupName: "A group",
      groupStatus: "ACTIVE",
      users: [{ userId: `u${id}`, active: true, primaryMember: true, defaultGroup: true }],
      programs: [],
      warnings: [],
    };
  }
  async *listMembers(groupId: string): AsyncIterable<CapillaryMember> {
    yield {
      userId: `u${groupId}`,
      joinedOn: "2024-01-01",
      role: "PRIMARY",
      permissions: [],
      primaryMember: true,
    };
  }
  // biome-ignore lint/correctness/useYield: no searches are configured in these tests
  async *searchGroups(_q: string): AsyncIterable<CapillaryGroupRef> {
    return;
  }
  // biome-ignore lint/correctness/useYield: no searches are configured in these tests
  async *extendedFieldSearch(_f: Readonly<Record<string, string>>): AsyncIterable<CapillaryGroupRef> {
    return;
  }
}

const context: Context = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: "sync-groups",
  functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:sync-groups",
  memoryLimitInMB: "512",
  awsRequestId: "req-1",
  logGroupName: "/aws/lambda/sync-groups",
  logStreamName: "stream",
  getRemainingTimeInMillis: () => 600_000,
  done: () => {},
  fail: () => {},
  succeed: () => {},
};

const event: ScheduledEvent = {
  version: "0",
  id: "evt-1",
  "detail-type": "Scheduled Event",
  source: "aws.events",
  account: "123456789012",
  time: "2024-02-01T00:00:00Z",
  region: "eu-west-1",
  resources: [],
  detail: {},
};

async function load() {
  vi.resetModules();
  return import("../../functions/sync-groups.ts");
}

beforeEach(() => {
  ddb.reset();
  ddb.on(PutCommand).resolves({});
  ddb.on(DeleteCommand).resolves({});
  ddb.on(QueryCommand).resolves({ Items: [] });
  ddb.on(BatchWriteCommand).resolves({});
  ddb.on(GetCommand).resolves({});
  ddb.on(TransactWriteCommand).resolves({});
  s3.reset();
  s3.on(ListObjectsV2Command).resolves({ Contents: [] });
  Object.assign(process.env, env);
});

afterEach(() => {
  for (const k of Object.keys(env)) delete process.env[k];
  Object.assign(process.env, saved);
});

describe("functions/sync-groups", () => {
  it("fails at import (cold start) when the configuration is invalid, naming the variable", async () => {
    delete process.env.TABLE_NAME;
    await expect(load()).rejects.toMatchObject({
      code: "CONFIG_INVALID",
      message: expect.stringContaining("TABLE_NAME"),
    });
  });

  it("wires the configured groups and syncs them through the real store into DynamoDB", async () => {
    const mod = await load();
    expect(mod.wiring.options).toEqual({
      groupIds: ["11", "12"],
      externalIds: [],
      searches: [],
      extendedFieldSearches: [],
      syncKnownGroups: true,
      concurrency: 4,
      timeReserveMs: 90_000,
    });
    mod.wiring.deps.api = new Api(new Set());
    const result = await mod.handler(event, context);
    expect(result).toMatchObject({
      groups: 2,
      synced: 2,
      failed: [],
      membershipsWritten: 2,
      lockSkipped: false,
    });
    const written = ddb
      .commandCalls(BatchWriteCommand)
      .flatMap((c) => c.args[0].input.RequestItems?.["table-unit"] ?? []);
    expect(written.map((w) => w.PutRequest?.Item?.sk).sort()).toEqual(["MEMBER#u11", "MEMBER#u12"]);
    expect(ddb.commandCalls(DeleteCommand)).toHaveLength(1); // lock released
  });

  it("returns the result when only some groups failed", async () => {
    const mod = await load();
    mod.wiring.deps.api = new Api(new Set(["12"]));
    const result = await mod.handler(event, context);
    expect(result).toMatchObject({ groups: 2, synced: 1, failed: ["12"] });
  });

  it("throws when every group failed, so the scheduler sees the failure", async () => {
    const mod = await load();
    mod.wiring.deps.api = new Api(new Set(["11", "12"]));
    await expect(mod.handler(event, context)).rejects.toMatchObject({ code: "SYNC_ALL_GROUPS_FAILED" });
  });
});
