/**
 * The whole path on the local stack (infra/stack.ts: the S3 emulator behind the event dispatcher,
 * DynamoDB Local, the Capillary API simulator), through the three deployed handlers (infra/pipeline.ts
 * runPipeline): the generated membership is served by the simulator and its CSV goes under `membership/`
 * (a Member Care download: the sync discovers the groups from it), then the sync, the upload of both
 * exports (each ingested through its S3 event), and the aggregation. Timed from the sync to the published
 * reports; the stack's start and the buckets and table are not counted. Peak RSS is this process's: the
 * handlers, the S3 emulator and the simulator (DynamoDB Local is a JVM of its own, not counted).
 */
import { readFile, writeFile } from "node:fs/promises";
import { GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { runPipeline } from "../infra/pipeline.ts";
import { DEFAULT_NAMES, provision } from "../infra/provision.ts";
import type { SimCredentials, SimGroup, SimState } from "../infra/sample/membership-types.ts";
import { stackClients, startStack } from "../infra/stack.ts";
import { type BenchData, readMemberships } from "./ingest-data.ts";
import type { RunResult } from "./ingest-worker.ts";

const CREDENTIALS: SimCredentials = {
  oauth: { key: "bench-key", secret: "bench-secret" },
  basic: { username: "bench", password: "bench" },
};

/** The simulator's state for the generated membership (every membership active). */
async function simState(file: string): Promise<SimState> {
  const groups = new Map<string, SimGroup>();
  for (const m of await readMemberships(file)) {
    let g = groups.get(m.groupId);
    if (!g) {
      g = {
        id: m.groupId,
        externalId: `EXT-${m.groupId}`,
        groupName: `Bench group ${m.groupId}`,
        groupStatus: "ACTIVE",
        maxGroupSize: 50,
        createdOn: "2023-05-01T10:00:00+00:00",
        lifeTimePurchases: "0",
        extendedFields: {},
        programs: [
          {
            programId: "1001",
            programTitle: "Bench",
            loyaltyPoints: `${Number(m.groupId) % 1000}.5`,
            lifetimePoints: "0",
            redeemed: "0",
            expired: "0",
            currentSlab: "Gold",
            slabSNo: 1,
          },
        ],
        members: [],
      };
      groups.set(m.groupId, g);
    }
    g.members.push({
      userId: m.userId,
      joinedOn: m.joinedOn ?? "2023-06-01",
      role: m.role === "PRIMARY" ? "PRIMARY" : "SECONDARY",
      permissions: ["REDEEM"],
      primaryMember: m.primaryMember,
      defaultGroup: m.defaultGroup,
      active: true,
      pointsContributed: "0",
    });
  }
  return { groups: [...groups.values()] };
}

export async function runOnStack(data: BenchData, out: string): Promise<RunResult> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const state = await simState(data.files.membership);
  const stack = await startStack({ capillary: { state, credentials: CREDENTIALS } });
  const { s3, ddb } = stackClients(stack);
  try {
    const names = DEFAULT_NAMES;
    await provision({ s3, ddb }, names);
    await s3.send(
      new PutObjectCommand({
        Bucket: names.exportsBucket,
        Key: "membership/member-care.csv",
        Body: await readFile(data.files.membership),
      }),
    );
    const env: Record<string, string> = {
      ...stack.env(),
      EXPORTS_BUCKET: names.exportsBucket,
      REPORTS_BUCKET: names.reportsBucket,
      TABLE_NAME: names.tableName,
      POWERTOOLS_LOG_LEVEL: "ERROR",
      CAPILLARY_AUTH: "oauth",
      CAPILLARY_OAUTH_KEY: CREDENTIALS.oauth.key,
      CAPILLARY_OAUTH_SECRET: CREDENTIALS.oauth.secret,
      CAPILLARY_RATE_PER_SECOND: "5000",
      SYNC_CONCURRENCY: "8",
    };
    const marks: number[] = [];
    const start = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const result = await runPipeline({
      env,
      dispatcher: stack.dispatcher,
      capillary: { simulator: stack.capillary ?? fail("no simulator"), states: [state] },
      uploads: [
        { key: "exports/points/points.csv", path: data.files.points },
        { key: "exports/redemptions/points_redemption_summary.csv", path: data.files.redemptions },
      ],
      progress: (line) => {
        // One mark after the sync, and one after the uploads are ingested (the S3 events drained).
        if (line.startsWith("sync ") || line.startsWith("ingested ")) marks.push(performance.now());
      },
    });
    const t3 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const maxRssMB = process.resourceUsage().maxRSS / 1024;
    if (result.ingestFailures.length > 0)
      throw new Error(`ingestion failed: ${JSON.stringify(result.ingestFailures)}`);
    const [t1 = t0, t2 = t1] = marks;
    const rows: Record<string, string>[] = [];
    for (const p of result.published) {
      const key = p.files.find((f) => f.name === "group_summary.json")?.key ?? "";
      const r = await s3.send(new GetObjectCommand({ Bucket: names.reportsBucket, Key: key }));
      const body = (await r.Body?.transformToString("utf8")) ?? "{}";
      rows.push(...(JSON.parse(body) as { rows: Record<string, string>[] }).rows);
    }
    await writeFile(out, JSON.stringify(rows));
    return {
      mode: "stack",
      rows: data.rows,
      accepted: data.rows,
      seconds,
      cpu: (cpu.user + cpu.system) / 1e6,
      bytes: data.bytes,
      maxRssMB,
      steps: { sync: (t1 - t0) / 1000, ingest: (t2 - t1) / 1000, aggregate: (t3 - t2) / 1000 },
    };
  } finally {
    s3.destroy();
    ddb.destroy();
    await stack.stop();
  }
}

function fail(message: string): never {
  throw new Error(message);
}
