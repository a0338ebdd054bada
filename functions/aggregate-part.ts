import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import { partJobSchema, runPartJob } from "../lib/aggregate-parts.ts";
import { logger } from "../lib/logger.ts";
import { createRuntime } from "../lib/runtime.ts";

/**
 * One key-hash part of a fanned-out aggregation (AGGREGATE_FANOUT=lambda), invoked synchronously by
 * aggregate-groups with a part job; returns where it wrote the part's aggregates. A bad job or a failure
 * is a function error, which fails the aggregation run (retried by its next round or the schedule).
 */
const runtime = createRuntime();

export async function aggregatePartEvent(
  event: unknown,
): Promise<{ part: number; rows: number; resultKey: string }> {
  const job = partJobSchema.parse(event);
  const done = await runPartJob(runtime.aggregate.objects, job);
  logger.info("aggregate part done", { part: done.part, rows: done.rows, periods: job.periods.length });
  return done;
}

export const handler = middy<unknown, { part: number; rows: number; resultKey: string }>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .handler(aggregatePartEvent);
