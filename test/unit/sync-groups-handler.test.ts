import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { GetParametersCommand, SSMClient } from "@aws-sdk/client-ssm";
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
const lambda = mockClient(LambdaClient);
const ssm = mockClient(SSMClient);
const saved = { ...process.env };
const extraEnv = ["CAPILLARY_CREDENTIALS_SSM_PREFIX", "SYNC_CONTINUE", "CAPILLARY_OAUTH_KEY"];

/** A context with 600 s left until `api` has fetched `groups` groups, then 1 s (below the 90 s reserve). */
function timedContext(api: { fetched: number }, groups: number): Context {
  return { ...context, getRemainingTimeInMillis: () => (api.fetched < groups ? 600_000 : 1_000) };
}

class Api implements CapillaryApi {
  fetched = 0;
  constructor(private readonly broken: Set<string>) {}
  async getGroup(ref: { id: string } | { externalId: string }): Promise<CapillaryGroup | null> {
    this.fetched++;
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
  lambda.reset();
  lambda.on(InvokeCommand).resolves({ StatusCode: 202 });
  ssm.reset();
  s3.on(ListObjectsV2Command).resolves({ Contents: [] });
  Object.assign(process.env, env);
});

afterEach(() => {
  vi.unstubAllGlobals();
  for (const k of [...Object.keys(env), ...extraEnv]) delete process.env[k];
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

  it("a run that does not fit invokes this function again (async) to continue it", async () => {
    const mod = await load();
    const api = new Api(new Set());
    mod.wiring.deps.api = api;
    mod.wiring.options.concurrency = 1;
    const result = await mod.handler(event, timedContext(api, 1));
    expect(result).toMatchObject({ complete: false, groups: 1, synced: 1, remaining: 1 });
    const calls = lambda.commandCalls(InvokeCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]?.args[0].input;
    expect(input).toMatchObject({ FunctionName: context.invokedFunctionArn, InvocationType: "Event" });
    expect(JSON.parse(Buffer.from(input?.Payload as Uint8Array).toString("utf8"))).toEqual({
      source: "group-loyalty-reports.sync",
      continueRunId: result.runId,
    });
    // The checkpoint was written under the lock (a transaction with the lock's condition check).
    const saved = ddb.commandCalls(TransactWriteCommand).map((c) => c.args[0].input.TransactItems ?? []);
    expect(saved.at(-1)?.[0]?.ConditionCheck?.Key).toEqual({ pk: "SYNC#LOCK", sk: "LOCK" });
    expect(saved.at(-1)?.[1]?.Put?.Item).toMatchObject({ pk: "SYNC#RUN", sk: "RUN", cursor: 1, total: 2 });
  });

  it("does not re-invoke itself when it made no progress, or with SYNC_CONTINUE=schedule", async () => {
    let mod = await load();
    let api = new Api(new Set());
    mod.wiring.deps.api = api;
    const none = await mod.handler(event, timedContext(api, 0));
    expect(none).toMatchObject({ complete: false, groups: 0 });
    process.env.SYNC_CONTINUE = "schedule";
    mod = await load();
    api = new Api(new Set());
    mod.wiring.deps.api = api;
    mod.wiring.options.concurrency = 1;
    const some = await mod.handler(event, timedContext(api, 1));
    expect(some).toMatchObject({ complete: false, groups: 1 });
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(0);
  });

  it("fetches the Capillary credentials from SSM once per cold start, never from the environment", async () => {
    process.env.CAPILLARY_AUTH = "oauth";
    process.env.CAPILLARY_CREDENTIALS_SSM_PREFIX = "/glr/test/capillary";
    ssm.on(GetParametersCommand).resolves({
      Parameters: [
        { Name: "/glr/test/capillary/oauth-key", Value: "ssm-key" },
        { Name: "/glr/test/capillary/oauth-secret", Value: "ssm-secret" },
      ],
    });
    const tokenBodies: unknown[] = [];
    vi.stubGlobal("fetch", async (input: string | URL, init?: RequestInit) => {
      const url = new URL(String(input));
      const reply = (body: string) => new Response(body, { status: 200 });
      if (url.pathname === "/v3/oauth/token/generate") {
        tokenBodies.push(JSON.parse(String(init?.body)));
        return reply(`{"data":{"accessToken":"t1","ttlSeconds":3600}}`);
      }
      if (url.pathname === "/v2/userGroup2/members") {
        return reply(
          `{"pagination":{"total":1},"data":[{"fleetUserId":5,"joinedOn":"2024-01-01","role":"PRIMARY"}]}`,
        );
      }
      const id = url.searchParams.get("id");
      return reply(
        `{"id":${id},"groupName":"G","groupStatus":"ACTIVE","fleetGroupUsers":[{"userId":5,"active":true}],"warnings":[]}`,
      );
    });
    const mod = await load();
    await mod.handler(event, context);
    await mod.handler(event, context);
    expect(ssm.commandCalls(GetParametersCommand)).toHaveLength(1);
    expect(tokenBodies).toEqual([{ key: "ssm-key", secret: "ssm-secret" }]);
  });
});
