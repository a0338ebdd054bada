/**
 * Group sync throughput: generates a Capillary state of 10,000 groups (1 to 20 members each, every 500th
 * group 250 members, so several /members pages), serves it from the simulator, and syncs it into DynamoDB
 * Local with the real client, store and use case. Prints Capillary requests/s, DynamoDB items written/s
 * and this process's peak RSS (DynamoDB Local's JVM is another process, not counted). The stored
 * memberships are counted afterwards and must equal the generated ones, so a broken sync cannot look fast.
 *
 *   npm run bench:sync -- [--groups 10000] [--rate 2000] [--concurrency 8] [--page-size 100]
 *                         [--budget-ms 0] [--seed 1]
 *
 * --rate is the client's request limit (production default 10/s: 10,000 groups then take about
 * 35 minutes); the default here is high so the bench measures our side. --budget-ms N runs the sync as
 * Lambda would: invocations of N ms each (reserve N/10), each resuming the previous one's checkpoint.
 */
import { parseArgs } from "node:util";
import { CreateTableCommand, DynamoDBClient, waitUntilTableExists } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { startCapillarySimulator } from "../infra/capillary-sim.ts";
import { startDynamoDbLocal } from "../infra/dynamodb-local.ts";
import type { SimGroup, SimState } from "../infra/sample/membership-types.ts";
import { LOCAL_CREDENTIALS, LOCAL_REGION } from "../infra/stack.ts";
import { createCapillaryApi } from "../lib/adapters/capillary-api.ts";
import { createMembershipStore } from "../lib/adapters/membership-store.ts";
import { tableDefinition } from "../lib/adapters/table.ts";
import type { MembershipStore } from "../lib/ports/membership-store.ts";
import { type SyncLog, type SyncResult, syncGroups } from "../lib/sync.ts";

// Node 20 is supported here; the SDK's notice about its future Node 22 floor is noise in the output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const { values: args } = parseArgs({
  options: {
    groups: { type: "string", default: "10000" },
    rate: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "8" },
    "page-size": { type: "string", default: "100" },
    "budget-ms": { type: "string", default: "0" },
    seed: { type: "string", default: "1" },
  },
});
const GROUPS = Number(args.groups);
const RATE = Number(args.rate);
const CONCURRENCY = Number(args.concurrency);
const PAGE_SIZE = Number(args["page-size"]);
const BUDGET_MS = Number(args["budget-ms"]);

/** mulberry32: a small deterministic PRNG. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function generate(n: number, seed: number): { state: SimState; memberships: number } {
  const random = rng(seed);
  const groups: SimGroup[] = [];
  let memberships = 0;
  for (let g = 0; g < n; g++) {
    const id = String(700_000_000 + g);
    const size = g % 500 === 499 ? 250 : 1 + Math.floor(random() * 20);
    memberships += size;
    groups.push({
      id,
      externalId: `EXT-${id}`,
      groupName: `Bench group ${g}`,
      groupStatus: "ACTIVE",
      maxGroupSize: 500,
      createdOn: "2023-05-01T10:00:00+05:30",
      lifeTimePurchases: "1000.000",
      extendedFields: { region: g % 2 === 0 ? "north" : "south" },
      programs: [
        {
          programId: "9007199254740995",
          programTitle: "Fleet",
          loyaltyPoints: `${Math.floor(random() * 100_000)}.250`,
          lifetimePoints: "100000.000",
          redeemed: "0",
          expired: "0",
          currentSlab: "Gold",
          slabSNo: 2,
        },
      ],
      members: Array.from({ length: size }, (_, i) => ({
        userId: `${id}${String(i).padStart(4, "0")}`,
        joinedOn: "2024-01-15",
        role: i === 0 ? ("PRIMARY" as const) : ("SECONDARY" as const),
        permissions: ["REDEEM"],
        primaryMember: i === 0,
        defaultGroup: true,
        active: i === 0 || random() > 0.1,
        pointsContributed: "1.000",
      })),
    });
  }
  return { state: { groups }, memberships };
}

/** Counts the items the store writes (memberships, metas, checkpoints). */
function counting(store: MembershipStore): { store: MembershipStore; writes: () => number } {
  let writes = 0;
  return {
    writes: () => writes,
    store: {
      ...store,
      putMemberships: async (items) => {
        const n = await store.putMemberships(items);
        writes += n;
        return n;
      },
      putGroupMeta: async (meta) => {
        await store.putGroupMeta(meta);
        writes += 1;
      },
      putSyncRun: async (owner, state, list) => {
        await store.putSyncRun(owner, state, list);
        writes += 1 + (list ? Math.ceil(list.length / 2_000) : 0);
      },
    },
  };
}

const quiet: SyncLog = { info: () => {}, warn: () => {} };

async function main(): Promise<void> {
  const t0 = performance.now();
  const { state, memberships } = generate(GROUPS, Number(args.seed));
  const credentials = {
    oauth: { key: "bench", secret: "bench-secret" },
    basic: { username: "u", password: "p" },
  };
  const [ddbLocal, sim] = await Promise.all([
    // Full JIT (the default options stop at C1 for a fast start; a long write load runs faster with C2).
    startDynamoDbLocal({ jvmOptions: ["-XX:+UseParallelGC", "-Xmx1g"] }),
    startCapillarySimulator({ state, credentials }),
  ]);
  try {
    const dynamo = new DynamoDBClient({
      region: LOCAL_REGION,
      endpoint: ddbLocal.endpoint,
      credentials: { ...LOCAL_CREDENTIALS },
      maxAttempts: 10,
    });
    const ddb = DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } });
    const table = "bench-sync";
    await dynamo.send(new CreateTableCommand(tableDefinition(table)));
    await waitUntilTableExists({ client: dynamo, maxWaitTime: 60 }, { TableName: table });
    const base = createMembershipStore(ddb, table, { writeConcurrency: 8 });
    const { store, writes } = counting(base);
    const api = createCapillaryApi({
      CAPILLARY_BASE_URL: sim.url,
      CAPILLARY_AUTH: "oauth",
      CAPILLARY_OAUTH_KEY: credentials.oauth.key,
      CAPILLARY_OAUTH_SECRET: credentials.oauth.secret,
      CAPILLARY_GROUP_IDS: [],
      CAPILLARY_GROUP_EXTERNAL_IDS: [],
      CAPILLARY_GROUP_SEARCH: [],
      CAPILLARY_RATE_PER_SECOND: RATE,
      CAPILLARY_TIMEOUT_MS: 10_000,
      CAPILLARY_MAX_RETRIES: 4,
      CAPILLARY_PAGE_SIZE: PAGE_SIZE,
    });
    console.log(
      `generated ${GROUPS} groups, ${memberships} memberships in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
        `syncing (rate ${RATE}/s, concurrency ${CONCURRENCY}, page size ${PAGE_SIZE}` +
        `${BUDGET_MS > 0 ? `, invocations of ${BUDGET_MS} ms` : ""})`,
    );

    const opts = {
      groupIds: state.groups.map((g) => g.id),
      externalIds: [],
      searches: [],
      concurrency: CONCURRENCY,
      timeReserveMs: BUDGET_MS > 0 ? Math.ceil(BUDGET_MS / 10) : 90_000,
    };
    const start = performance.now();
    const results: SyncResult[] = [];
    for (;;) {
      const invocationEnd = performance.now() + BUDGET_MS;
      const remainingMs =
        BUDGET_MS > 0 ? () => invocationEnd - performance.now() : () => Number.POSITIVE_INFINITY;
      const r = await syncGroups({ api, store, now: () => new Date(), log: quiet, remainingMs }, opts);
      results.push(r);
      if (r.complete || r.groups === 0) break;
    }
    const seconds = (performance.now() - start) / 1000;
    const last = results.at(-1);

    let stored = 0;
    for await (const _ of base.listAllMemberships()) stored++;
    const stats = api.stats();
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    const line = (k: string, v: string) => console.log(`${k.padEnd(28)} ${v}`);
    line("groups synced / failed", `${last?.run?.synced ?? 0} / ${last?.run?.failed ?? 0}`);
    line("invocations", String(results.length));
    line("memberships stored", `${stored} (generated ${memberships})`);
    line("elapsed", `${seconds.toFixed(1)} s`);
    line("Capillary requests", `${stats.requests} (retries ${stats.retries}, throttled ${stats.throttled})`);
    line("requests/s", (stats.requests / seconds).toFixed(0));
    line("DynamoDB items written", String(writes()));
    line("DynamoDB writes/s", (writes() / seconds).toFixed(0));
    line("peak RSS (node process)", `${peakRssMb.toFixed(0)} MB`);
    dynamo.destroy();
    if (stored !== memberships || !last?.complete) {
      console.error("FAILED: the stored memberships do not match the generated state");
      process.exitCode = 1;
    }
  } finally {
    await Promise.allSettled([sim.stop(), ddbLocal.stop()]);
  }
}

await main();
