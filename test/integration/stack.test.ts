import { spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DescribeTableCommand } from "@aws-sdk/client-dynamodb";
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { S3Event, S3EventRecord } from "aws-lambda";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ensureDynamoDbLocal } from "../../infra/dynamodb-local.ts";
import { provision } from "../../infra/provision.ts";
import { encodeS3EventKey, type S3Dispatcher, startS3Dispatcher } from "../../infra/s3-dispatcher.ts";
import { startStack } from "../../infra/stack.ts";
import { localClients, s3ClientFor, uniqueName } from "./helpers.ts";

const MiB = 1024 * 1024;
const posix = process.platform !== "win32";

function decodeEventKey(k: string): string {
  return decodeURIComponent(k.replace(/\+/g, " "));
}

/** True while any process of the group exists (the DynamoDB Local watchdog leads its group). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return e instanceof Error && "code" in e && e.code === "EPERM";
  }
}

function javaOnPort(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const p = spawn("pgrep", ["-f", `DynamoDBLocal\\.jar .*-port ${port}$`], { stdio: "ignore" });
    p.on("exit", (code) => ok(code === 0));
    p.on("error", () => ok(false));
  });
}

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

describe("S3 dispatcher in front of fauxqs", () => {
  const { s3: direct } = localClients();
  let dispatcher: S3Dispatcher;
  let s3: S3Client;
  let bucket: string;
  let records: S3EventRecord[] = [];
  const collect = async (e: S3Event) => {
    records.push(...e.Records);
  };

  beforeAll(async () => {
    dispatcher = await startS3Dispatcher({ upstream: localClients().stack.s3Endpoint, region: "us-east-1" });
    s3 = s3ClientFor(dispatcher.endpoint);
    bucket = uniqueName("dispatch");
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  afterAll(async () => {
    await dispatcher.stop();
  });
  beforeEach(async () => {
    await dispatcher.drain();
    records = [];
    dispatcher.setTarget(collect);
  });

  async function head(key: string) {
    const h = await direct.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return { size: h.ContentLength, eTag: h.ETag?.replace(/"/g, "") };
  }

  it("listens on 127.0.0.1", () => {
    expect(new URL(dispatcher.endpoint).hostname).toBe("127.0.0.1");
  });

  it("PUT under exports/ emits one ObjectCreated:Put with the S3-encoded key, size and eTag", async () => {
    const cases = [
      { key: "exports/my file (1).csv", encoded: "exports/my+file+%281%29.csv" },
      { key: "exports/a+b=c&d.csv", encoded: "exports/a%2Bb%3Dc%26d.csv" },
      {
        key: "exports/Ünïcødé €/日本.csv",
        encoded: "exports/%C3%9Cn%C3%AFc%C3%B8d%C3%A9+%E2%82%AC/%E6%97%A5%E6%9C%AC.csv",
      },
      { key: "exports/x_y-z.*~'!.csv", encoded: "exports/x_y-z.*%7E%27%21.csv" },
    ];
    for (const c of cases) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: c.key, Body: `id\n${c.key}\n` }));
    }
    const result = await dispatcher.drain();
    expect(result).toEqual({ delivered: cases.length, failed: [] });
    expect(records).toHaveLength(cases.length);
    for (const c of cases) {
      const matching = records.filter((r) => r.s3.object.key === c.encoded);
      expect(matching, c.key).toHaveLength(1);
      const r = matching[0];
      if (!r) throw new Error("unreachable");
      expect(encodeS3EventKey(c.key)).toBe(c.encoded);
      expect(decodeEventKey(r.s3.object.key)).toBe(c.key);
      expect(r.eventName).toBe("ObjectCreated:Put");
      expect({ size: r.s3.object.size, eTag: r.s3.object.eTag }).toEqual(await head(c.key));
      expect(r).toMatchObject({
        eventVersion: "2.1",
        eventSource: "aws:s3",
        awsRegion: "us-east-1",
        userIdentity: { principalId: "AWS:local" },
        requestParameters: { sourceIPAddress: "127.0.0.1" },
        s3: {
          s3SchemaVersion: "1.0",
          configurationId: expect.any(String),
          bucket: {
            name: bucket,
            arn: `arn:aws:s3:::${bucket}`,
            ownerIdentity: { principalId: expect.any(String) },
          },
        },
      });
      expect(r.responseElements["x-amz-request-id"]).toMatch(/\S/);
      expect(r.responseElements["x-amz-id-2"]).toMatch(/\S/);
      expect(new Date(r.eventTime).toISOString()).toBe(r.eventTime);
      expect(r.s3.object.sequencer).toMatch(/^[0-9A-F]{18}$/);
      expect(r.s3.object.eTag).not.toContain('"');
    }
  });

  it("CopyObject emits ObjectCreated:Copy for the destination", async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "incoming/src (a).csv", Body: "a,b\n1,2\n" }));
    await s3.send(
      new CopyObjectCommand({
        Bucket: bucket,
        Key: "exports/copied (a).csv",
        CopySource: `${bucket}/${encodeURIComponent("incoming/src (a).csv")}`,
      }),
    );
    await dispatcher.drain();
    expect(records.map((r) => [r.eventName, r.s3.object.key])).toEqual([
      ["ObjectCreated:Copy", "exports/copied+%28a%29.csv"],
    ]);
    const r = records[0];
    expect({ size: r?.s3.object.size, eTag: r?.s3.object.eTag }).toEqual(
      await head("exports/copied (a).csv"),
    );
  });

  it("a 12 MiB lib-storage Upload emits exactly one ObjectCreated:CompleteMultipartUpload", async () => {
    const key = "exports/big upload+1.bin";
    const body = Buffer.alloc(12 * MiB);
    for (let i = 0; i < body.length; i += 4096) body[i] = i % 251;
    await new Upload({
      client: s3,
      params: { Bucket: bucket, Key: key, Body: body },
      partSize: 5 * MiB,
    }).done();
    await dispatcher.drain();
    expect(records).toHaveLength(1);
    const r = records[0];
    expect(r?.eventName).toBe("ObjectCreated:CompleteMultipartUpload");
    expect(r?.s3.object.key).toBe("exports/big+upload%2B1.bin");
    expect(r?.s3.object.size).toBe(12 * MiB);
    expect(r?.s3.object.eTag).toMatch(/^[0-9a-f]{32}-3$/);
    expect({ size: r?.s3.object.size, eTag: r?.s3.object.eTag }).toEqual(await head(key));
  });

  it("writes outside exports/ and non-creating requests emit nothing", async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "staging/a.csv", Body: "x" }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "reports/exports/a.csv", Body: "x" }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "exportsx/a.csv", Body: "x" }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "Exports/a.csv", Body: "x" }));
    await s3.send(
      new CopyObjectCommand({ Bucket: bucket, Key: "rejects/a.csv", CopySource: `${bucket}/staging/a.csv` }),
    );
    await new Upload({
      client: s3,
      params: { Bucket: bucket, Key: "staging/big.bin", Body: Buffer.alloc(11 * MiB) },
    }).done();
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: "exports/my file (1).csv" }));
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "staging/a.csv" }));
    // A failed write under exports/ (no such bucket) is not an event either.
    await expect(
      s3.send(new PutObjectCommand({ Bucket: uniqueName("missing"), Key: "exports/a.csv", Body: "x" })),
    ).rejects.toThrow();
    expect(await dispatcher.drain()).toEqual({ delivered: 0, failed: [] });
    expect(records).toEqual([]);
  });

  it("sequencers of one key increase strictly in write order, at a fixed width", async () => {
    for (let i = 0; i < 5; i++) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "exports/same.csv", Body: `v${i}` }));
    }
    await dispatcher.drain();
    const seq = records.map((r) => r.s3.object.sequencer);
    expect(seq).toHaveLength(5);
    for (let i = 1; i < seq.length; i++) {
      expect(seq[i]?.length).toBe(seq[0]?.length);
      expect(BigInt(`0x${seq[i]}`) > BigInt(`0x${seq[i - 1]}`)).toBe(true);
    }
  });

  it("delivers asynchronously: the PUT does not wait for the handler", async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let started = false;
    dispatcher.setTarget(async () => {
      started = true;
      await gate;
    });
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "exports/slow.csv", Body: "x" }));
    const drained = dispatcher.drain();
    let drainedEarly = false;
    void drained.then(() => {
      drainedEarly = true;
    });
    expect(await waitFor(() => started, 5000)).toBe(true);
    expect(drainedEarly).toBe(false);
    release();
    expect(await drained).toEqual({ delivered: 1, failed: [] });
  });

  it("drain() also waits for deliveries that start while draining", async () => {
    dispatcher.setTarget(async (e) => {
      const key = decodeEventKey(e.Records[0]?.s3.object.key ?? "");
      records.push(...e.Records);
      if (key === "exports/chain-1.csv") {
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "exports/chain-2.csv", Body: "2" }));
      }
    });
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "exports/chain-1.csv", Body: "1" }));
    expect(await dispatcher.drain()).toEqual({ delivered: 2, failed: [] });
    expect(records.map((r) => r.s3.object.key)).toEqual(["exports/chain-1.csv", "exports/chain-2.csv"]);
  });

  it("honours Expect: 100-continue on a raw PUT", async () => {
    const { port } = new URL(dispatcher.endpoint);
    const body = Buffer.alloc(3 * MiB, 1);
    const outcome = await new Promise<{ continued: boolean; status: number }>((ok, fail) => {
      let continued = false;
      const req = request({
        host: "127.0.0.1",
        port,
        method: "PUT",
        path: `/${bucket}/exports/expect.bin`,
        headers: { expect: "100-continue", "content-length": body.length, authorization: "none" },
      });
      req.on("continue", () => {
        continued = true;
        req.end(body);
      });
      req.on("response", (res) => {
        res.resume();
        res.on("end", () => ok({ continued, status: res.statusCode ?? 0 }));
      });
      req.on("error", fail);
      req.flushHeaders();
    });
    expect(outcome).toEqual({ continued: true, status: 200 });
    await dispatcher.drain();
    expect(records.map((r) => [r.eventName, r.s3.object.size, r.userIdentity.principalId])).toEqual([
      ["ObjectCreated:Put", 3 * MiB, "AWS:anonymous"],
    ]);
  });

  it("setTarget(null) turns events off", async () => {
    dispatcher.setTarget(null);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "exports/unobserved.csv", Body: "x" }));
    expect(await dispatcher.drain()).toEqual({ delivered: 0, failed: [] });
  });
});

describe("S3 dispatcher delivery policy", () => {
  const { stack } = localClients();
  let dispatcher: S3Dispatcher | undefined;
  let bucket: string;

  afterEach(async () => {
    await dispatcher?.stop();
    dispatcher = undefined;
  });

  async function start(opts: { retries?: number; concurrency?: number }) {
    dispatcher = await startS3Dispatcher({
      upstream: stack.s3Endpoint,
      region: stack.region,
      retryDelayMs: 10,
      ...opts,
    });
    const s3 = s3ClientFor(dispatcher.endpoint);
    bucket = uniqueName("policy");
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    return { d: dispatcher, s3 };
  }

  it("retries a failing target twice, then reports it from drain()", async () => {
    const { d, s3 } = await start({});
    const attempts = new Map<string, number>();
    d.setTarget(async (e) => {
      const key = decodeEventKey(e.Records[0]?.s3.object.key ?? "");
      attempts.set(key, (attempts.get(key) ?? 0) + 1);
      if (key === "exports/flaky.csv" && attempts.get(key) === 1) throw new Error("transient");
      if (key === "exports/bad (1).csv") throw new Error("handler exploded");
    });
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "exports/bad (1).csv", Body: "x" }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "exports/flaky.csv", Body: "x" }));
    expect(await d.drain()).toEqual({
      delivered: 1,
      failed: [{ key: "exports/bad (1).csv", error: "handler exploded" }],
    });
    expect(Object.fromEntries(attempts)).toEqual({ "exports/bad (1).csv": 3, "exports/flaky.csv": 2 });
    // drain() reports each outcome once
    expect(await d.drain()).toEqual({ delivered: 0, failed: [] });
  });

  it("honours retries: 0", async () => {
    const { d, s3 } = await start({ retries: 0 });
    let calls = 0;
    d.setTarget(async () => {
      calls++;
      throw new Error("no");
    });
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "exports/once.csv", Body: "x" }));
    expect((await d.drain()).failed).toHaveLength(1);
    expect(calls).toBe(1);
  });

  it("bounds concurrent deliveries", async () => {
    const { d, s3 } = await start({ concurrency: 2 });
    let inFlight = 0;
    let max = 0;
    d.setTarget(async () => {
      inFlight++;
      max = Math.max(max, inFlight);
      await new Promise((r) => setTimeout(r, 60));
      inFlight--;
    });
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        s3.send(new PutObjectCommand({ Bucket: bucket, Key: `exports/c${i}.csv`, Body: "x" })),
      ),
    );
    expect(await d.drain()).toEqual({ delivered: 8, failed: [] });
    expect(max).toBe(2);
  });
});

describe("provision", () => {
  it("creates both buckets and the table with GSI1, idempotently", async () => {
    const { s3, dynamo, ddb } = localClients();
    const names = {
      exportsBucket: uniqueName("exports"),
      reportsBucket: uniqueName("reports"),
      tableName: uniqueName("table"),
    };
    await provision({ s3, ddb: dynamo }, names);
    await provision({ s3, ddb }, names); // again, through the DocumentClient
    await s3.send(new HeadBucketCommand({ Bucket: names.exportsBucket }));
    await s3.send(new HeadBucketCommand({ Bucket: names.reportsBucket }));
    const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: names.tableName }));
    expect(Table?.TableStatus).toBe("ACTIVE");
    expect(Table?.KeySchema).toEqual([
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ]);
    expect(Table?.GlobalSecondaryIndexes?.map((g) => [g.IndexName, g.KeySchema, g.IndexStatus])).toEqual([
      [
        "GSI1",
        [
          { AttributeName: "gsi1pk", KeyType: "HASH" },
          { AttributeName: "gsi1sk", KeyType: "RANGE" },
        ],
        "ACTIVE",
      ],
    ]);
  });
});

describe("startStack", () => {
  it("starts everything on 127.0.0.1, dispatches events and stops without leaving java behind", async () => {
    const credentials = {
      oauth: { key: "stack-key", secret: "stack-secret" },
      basic: { username: "stack-user", password: "stack-pass" },
    };
    const stack = await startStack({ capillary: { state: { groups: [] }, credentials } });
    let stopped = false;
    try {
      expect(stack.capillaryUrl).toBe(stack.capillary?.url);
      for (const url of [
        stack.s3Endpoint,
        stack.s3UpstreamEndpoint,
        stack.dynamoEndpoint,
        stack.capillaryUrl ?? "",
      ]) {
        expect(new URL(url).hostname).toBe("127.0.0.1");
      }
      expect(stack.env()).toEqual({
        AWS_REGION: "us-east-1",
        AWS_ACCESS_KEY_ID: "local",
        AWS_SECRET_ACCESS_KEY: "local",
        S3_ENDPOINT: stack.s3Endpoint,
        S3_FORCE_PATH_STYLE: "true",
        DYNAMODB_ENDPOINT: stack.dynamoEndpoint,
        CAPILLARY_BASE_URL: stack.capillaryUrl,
      });
      const s3 = s3ClientFor(stack.s3Endpoint);
      await s3.send(new CreateBucketCommand({ Bucket: "glr-exports" }));
      const seen: string[] = [];
      stack.dispatcher.setTarget(async (e) => {
        seen.push(...e.Records.map((r) => r.s3.object.key));
      });
      await s3.send(new PutObjectCommand({ Bucket: "glr-exports", Key: "exports/x y.csv", Body: "1" }));
      expect(await stack.dispatcher.drain()).toEqual({ delivered: 1, failed: [] });
      expect(seen).toEqual(["exports/x+y.csv"]);

      const port = Number(new URL(stack.dynamoEndpoint).port);
      if (posix) expect(await javaOnPort(port)).toBe(true);
      await stack.stop();
      stopped = true;
      if (posix) expect(await javaOnPort(port)).toBe(false);
    } finally {
      if (!stopped) await stack.stop();
    }
  });
});

describe("ensureDynamoDbLocal", () => {
  it("installs only the jar and its lib, once, even when two installs race", async () => {
    const base = await mkdtemp(join(tmpdir(), "glr-ddb-"));
    const dir = join(base, "ddb");
    try {
      const [a, b] = await Promise.all([ensureDynamoDbLocal(dir), ensureDynamoDbLocal(dir)]);
      expect(a).toBe(dir);
      expect(b).toBe(dir);
      expect((await readdir(dir)).sort()).toEqual(["DynamoDBLocal.jar", "DynamoDBLocal_lib"]);
      expect(existsSync(join(dir, "DynamoDBLocal_lib", "sqlite4java.jar"))).toBe(true);
      // A later call finds the install and leaves it alone (no second fetch or extraction).
      const before = statSync(join(dir, "DynamoDBLocal.jar"));
      expect(await ensureDynamoDbLocal(dir)).toBe(dir);
      const after = statSync(join(dir, "DynamoDBLocal.jar"));
      expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!posix)("DynamoDB Local never outlives its parent", () => {
  const moduleUrl = new URL("../../infra/dynamodb-local.ts", import.meta.url).href;
  const root = fileURLToPath(new URL("../..", import.meta.url));

  /** A child node process that starts DynamoDB Local, prints its pid/port, then ends as `how` says. */
  async function runParent(how: "SIGKILL" | "SIGTERM" | "exit"): Promise<{ pgid: number; port: number }> {
    const code = [
      `import { startDynamoDbLocal } from ${JSON.stringify(moduleUrl)};`,
      "const d = await startDynamoDbLocal();",
      "console.log('READY', d.pid, d.port);",
      // Any input ends the process without stop(); stdin also keeps it alive until then.
      "process.stdin.once('data', () => process.exit(0));",
    ].join("\n");
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      cwd: root,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const exited = new Promise<void>((r) => child.on("exit", () => r()));
    const ready = await waitFor(() => /READY \d+ \d+/.test(out) || child.exitCode !== null, 90_000);
    const m = /READY (\d+) (\d+)/.exec(out);
    if (!ready || !m) {
      child.kill("SIGKILL");
      throw new Error(`parent did not start DynamoDB Local:\n${out}`);
    }
    const pgid = Number(m[1]);
    const port = Number(m[2]);
    expect(groupAlive(pgid)).toBe(true);
    expect(await javaOnPort(port)).toBe(true);
    if (how === "exit") child.stdin.write("exit\n");
    else child.kill(how);
    await exited;
    return { pgid, port };
  }

  it("kills java when the parent exits, gets SIGTERM, or is SIGKILLed", async () => {
    const results = await Promise.all((["SIGKILL", "SIGTERM", "exit"] as const).map((how) => runParent(how)));
    for (const { pgid, port } of results) {
      expect(await waitFor(() => !groupAlive(pgid), 10_000)).toBe(true);
      expect(await javaOnPort(port)).toBe(false);
    }
  });
});
