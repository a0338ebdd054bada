import type { TestProject } from "vitest/node";
import { startDynamoDbLocal } from "../../infra/dynamodb-local.ts";
import { LOCAL_REGION, startS3Emulator } from "../../infra/stack.ts";
import type { StackContext } from "./stack-context.ts";

/**
 * Starts DynamoDB Local and the S3 emulator once for the whole integration run (tests run in workers, so
 * they get endpoints, not objects). The first run also fetches the DynamoDB Local jar (~57 MB, a few s).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const [s3, ddb] = await Promise.allSettled([startS3Emulator(), startDynamoDbLocal()]);
  if (s3.status === "rejected" || ddb.status === "rejected") {
    await Promise.allSettled([
      s3.status === "fulfilled" ? s3.value.stop() : undefined,
      ddb.status === "fulfilled" ? ddb.value.stop() : undefined,
    ]);
    throw s3.status === "rejected" ? s3.reason : ddb.status === "rejected" ? ddb.reason : undefined;
  }
  const context: StackContext = {
    region: LOCAL_REGION,
    dynamoEndpoint: ddb.value.endpoint,
    s3Endpoint: s3.value.endpoint,
  };
  project.provide("stack", context);
  return async () => {
    await Promise.all([s3.value.stop(), ddb.value.stop()]);
  };
}
