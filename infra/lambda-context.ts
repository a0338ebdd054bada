import { randomUUID } from "node:crypto";
import type { Context, ScheduledEvent } from "aws-lambda";

/** A Lambda invocation context for running handlers locally, as the Lambda runtime would pass it. */
export function lambdaContext(functionName: string, timeoutMs = 900_000): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    memoryLimitInMB: "1024",
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: "local",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** An EventBridge scheduled event, as the schedule delivers it to the sync and aggregation functions. */
export function scheduledEvent(region = process.env.AWS_REGION ?? "us-east-1"): ScheduledEvent {
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": "Scheduled Event",
    source: "aws.events",
    account: "000000000000",
    time: new Date().toISOString(),
    region,
    resources: [],
    detail: {},
  };
}
