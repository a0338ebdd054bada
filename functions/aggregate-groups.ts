import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import { z } from "zod";
import { aggregatePeriods, dirtyPeriods, type PublishedReport } from "../lib/aggregate.ts";
import { periodRange } from "../lib/domain/periods.ts";
import { logger } from "../lib/logger.ts";
import { metrics, recordAggregation } from "../lib/metrics.ts";
import { createRuntime } from "../lib/runtime.ts";

const runtime = createRuntime();

const period = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, "a period is YYYY-MM");
/** A scheduled event (no periods: every dirty period), or an on-demand request for periods or a range. */
export const aggregateEventSchema = z.union([
  z.object({ periods: z.array(period).min(1) }),
  z.object({ from: period, to: period }),
  z.object({}).loose(),
]);
export type AggregateEvent = z.infer<typeof aggregateEventSchema>;

export async function aggregateEvent(event: unknown): Promise<PublishedReport[]> {
  const e = aggregateEventSchema.parse(event ?? {});
  const periods =
    "periods" in e && Array.isArray(e.periods)
      ? e.periods
      : "from" in e && typeof e.from === "string" && typeof e.to === "string"
        ? periodRange(e.from, e.to)
        : await dirtyPeriods(runtime.aggregate.ledger);
  logger.info("aggregation requested", { periods });
  const before = await runtime.aggregate.ledger.listPeriods();
  const published = await aggregatePeriods(runtime.aggregate, periods);
  const after = await runtime.aggregate.ledger.listPeriods();
  recordAggregation(metrics, before, published, after, runtime.aggregate.now());
  return published;
}

export const handler = middy<unknown, PublishedReport[]>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .use(logMetrics(metrics, { captureColdStartMetric: true }))
  .handler(aggregateEvent);
