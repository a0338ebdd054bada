import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import type { ScheduledEvent } from "aws-lambda";
import { createCapillaryApi } from "../lib/adapters/capillary-api.ts";
import { capillarySchema, loadConfig } from "../lib/config.ts";
import { logger } from "../lib/logger.ts";
import { createRuntime } from "../lib/runtime.ts";
import {
  type SyncDeps,
  type SyncOptions,
  type SyncResult,
  settleSyncResult,
  syncGroups,
} from "../lib/sync.ts";

/**
 * EventBridge schedule -> sync the configured Capillary groups into DynamoDB.
 * Cold start: config validated once (a bad variable fails the init), clients created once. A test sets
 * process.env and then imports this module dynamically; `wiring` exposes what was built.
 * No error middleware: a failure throws, so the scheduler / failure destination sees it. A run where only
 * some groups failed returns its result (they are retried next run) after a warning with the count.
 */
const runtime = createRuntime();
const config = loadConfig(process.env, capillarySchema);

export const wiring: { deps: SyncDeps; options: SyncOptions } = {
  deps: {
    api: createCapillaryApi(config, { log: (entry) => logger.info("capillary api", entry) }),
    store: runtime.membershipStore,
    now: () => new Date(),
    log: logger,
  },
  options: {
    groupIds: config.CAPILLARY_GROUP_IDS,
    externalIds: config.CAPILLARY_GROUP_EXTERNAL_IDS,
    searches: config.CAPILLARY_GROUP_SEARCH,
  },
};

export const handler = middy<ScheduledEvent, SyncResult>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .handler(async () => settleSyncResult(await syncGroups(wiring.deps, wiring.options), wiring.deps.log));
