import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";
import { SSMClient } from "@aws-sdk/client-ssm";
import middy from "@middy/core";
import type { Context, ScheduledEvent } from "aws-lambda";
import { createCapillaryApi } from "../lib/adapters/capillary-api.ts";
import { capillaryCredentialsProvider, credentialsSourceOf } from "../lib/adapters/capillary-credentials.ts";
import { S3Objects } from "../lib/adapters/s3-objects.ts";
import { capillarySchema, loadConfig, syncSchema } from "../lib/config.ts";
import { logger } from "../lib/logger.ts";
import { discoverFromMembershipCsvs } from "../lib/membership-csv.ts";
import { type ApiCounters, metrics, recordSync } from "../lib/metrics.ts";
import { createRuntime } from "../lib/runtime.ts";
import {
  type SyncDeps,
  type SyncOptions,
  type SyncResult,
  settleSyncResult,
  syncGroups,
} from "../lib/sync.ts";

/**
 * EventBridge schedule (or this function's own continuation event) -> sync the Capillary groups into
 * DynamoDB. Cold start: config validated once (a bad variable fails the init), clients created once; the
 * Capillary credentials are fetched from SSM / Secrets Manager on first use and cached by the client (re-read
 * after an authentication failure). A test sets process.env and then imports this module dynamically;
 * `wiring` exposes what was built.
 *
 * A run that does not fit in one invocation stops before the time runs low (SYNC_TIME_RESERVE_MS) and,
 * with SYNC_CONTINUE=self, invokes this function again asynchronously to resume it (only when this
 * invocation made progress and not every group failed, so a broken API cannot loop); otherwise the next
 * schedule resumes it.
 * No error middleware: a failure throws, so the scheduler / failure destination sees it. A run where only
 * some groups failed returns its result (they are retried next run) after a warning with the count.
 */
const runtime = createRuntime();
const config = loadConfig(process.env, capillarySchema, syncSchema);
const region = runtime.config.AWS_REGION;
const objects = new S3Objects(runtime.clients.s3);

/** The self-continuation event (any other event starts or resumes a run the same way). */
export interface ContinueEvent {
  source: "group-loyalty-reports.sync";
  continueRunId: string;
}

let ssm: SSMClient | undefined;

const capillary = createCapillaryApi(config, {
  log: (entry) => logger.info("capillary api", entry),
  credentials: capillaryCredentialsProvider(config, {
    ssm: () => {
      ssm ??= new SSMClient({ region });
      return ssm;
    },
  }),
});
/** API counters at the end of the previous invocation of this process (metrics are per invocation). */
let apiBefore: ApiCounters = capillary.stats();

export const wiring: {
  deps: SyncDeps;
  options: SyncOptions;
  lambda: LambdaClient;
  continueMode: "self" | "schedule";
} = {
  deps: {
    api: capillary,
    store: runtime.membershipStore,
    now: () => new Date(),
    log: logger,
    extraGroupIds: () =>
      discoverFromMembershipCsvs(objects, runtime.config.EXPORTS_BUCKET, config.MEMBERSHIP_CSV_PREFIX),
  },
  options: {
    groupIds: config.CAPILLARY_GROUP_IDS,
    externalIds: config.CAPILLARY_GROUP_EXTERNAL_IDS,
    searches: config.CAPILLARY_GROUP_SEARCH,
    extendedFieldSearches: config.CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH,
    syncKnownGroups: config.SYNC_KNOWN_GROUPS,
    concurrency: config.SYNC_CONCURRENCY,
    timeReserveMs: config.SYNC_TIME_RESERVE_MS,
  },
  lambda: runtime.clients.lambda,
  continueMode: config.SYNC_CONTINUE,
};

logger.info("sync-groups configured", { credentialsSource: credentialsSourceOf(config) });

async function run(_event: ScheduledEvent | ContinueEvent, context: Context): Promise<SyncResult> {
  const deps: SyncDeps = { ...wiring.deps, remainingMs: () => context.getRemainingTimeInMillis() };
  const result = await syncGroups(deps, wiring.options);
  const progressed = result.groups > 0 && result.failed.length < result.groups;
  if (!result.lockSkipped && !result.complete) {
    if (wiring.continueMode === "self" && progressed) {
      const event: ContinueEvent = { source: "group-loyalty-reports.sync", continueRunId: result.runId };
      await wiring.lambda.send(
        new InvokeCommand({
          FunctionName: context.invokedFunctionArn,
          InvocationType: "Event",
          Payload: Buffer.from(JSON.stringify(event)),
        }),
      );
      logger.info("sync run continues in a new invocation", {
        runId: result.runId,
        remaining: result.remaining,
      });
    } else {
      logger.info("sync run continues on the next schedule", {
        runId: result.runId,
        remaining: result.remaining,
        progressed,
      });
    }
  }
  const apiNow = capillary.stats();
  recordSync(metrics, result, apiNow, apiBefore);
  apiBefore = apiNow;
  return settleSyncResult(result, wiring.deps.log);
}

export const handler = middy<ScheduledEvent | ContinueEvent, SyncResult>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics, { captureColdStartMetric: true }))
  .handler(run);
