import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import type { S3Event } from "aws-lambda";
import { DEFAULT_NAMES, provision } from "./provision.ts";
import { type LocalStack, startStack } from "./stack.ts";

/**
 * `npm run stack`: the local stack with the default buckets and table, up until Ctrl-C.
 * S3 events under exports/ are printed (no Lambda runs here; the demo and the tests attach handlers).
 */

function usage(stack: LocalStack): string {
  const env = stack.env();
  const exports = Object.entries(env)
    .map(([k, v]) => `  export ${k}=${v}`)
    .join("\n");
  const { exportsBucket, reportsBucket, tableName } = DEFAULT_NAMES;
  return `Local stack is up (started in ${stack.startupMs.total} ms: S3 ${stack.startupMs.s3} ms, DynamoDB ${stack.startupMs.dynamo} ms).

  S3 (path-style, emits events for exports/):  ${stack.s3Endpoint}
  S3 emulator directly (no events):            ${stack.s3UpstreamEndpoint}
  DynamoDB Local:                              ${stack.dynamoEndpoint}${stack.capillaryUrl ? `\n  Capillary API simulator:                     ${stack.capillaryUrl}` : ""}
  Buckets: ${exportsBucket}, ${reportsBucket}    Table: ${tableName}

Environment for the app, the CLI and the SDK:
${exports}
  export EXPORTS_BUCKET=${exportsBucket} REPORTS_BUCKET=${reportsBucket} TABLE_NAME=${tableName}

AWS CLI (any credentials work; these are the ones above):
  aws --endpoint-url ${stack.s3Endpoint} s3 ls s3://${exportsBucket}/
  aws --endpoint-url ${stack.s3Endpoint} s3 cp ./export.csv s3://${exportsBucket}/exports/export.csv
  aws --endpoint-url ${stack.dynamoEndpoint} dynamodb scan --table-name ${tableName}

SDK (v3):
  new S3Client({ region: "${stack.region}", endpoint: "${stack.s3Endpoint}", forcePathStyle: true,
                 credentials: { accessKeyId: "local", secretAccessKey: "local" } })
  new DynamoDBClient({ region: "${stack.region}", endpoint: "${stack.dynamoEndpoint}",
                       credentials: { accessKeyId: "local", secretAccessKey: "local" } })

Ctrl-C stops everything.`;
}

function printEvent(e: S3Event): Promise<void> {
  for (const r of e.Records) {
    console.log(
      `[s3 event] ${r.eventName} s3://${r.s3.bucket.name}/${r.s3.object.key} (${r.s3.object.size} bytes)`,
    );
  }
  return Promise.resolve();
}

async function main(): Promise<void> {
  const stack = await startStack();
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping the local stack...`);
    stack.stop().then(
      () => {
        console.log("stopped.");
        process.exit(0);
      },
      (e: unknown) => {
        console.error("stop failed:", e);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));

  try {
    const clientConfig = { region: stack.region, credentials: stack.credentials };
    await provision(
      {
        s3: new S3Client({ ...clientConfig, endpoint: stack.s3UpstreamEndpoint, forcePathStyle: true }),
        ddb: new DynamoDBClient({ ...clientConfig, endpoint: stack.dynamoEndpoint }),
      },
      DEFAULT_NAMES,
    );
  } catch (e) {
    await stack.stop();
    throw e;
  }
  stack.dispatcher.setTarget(printEvent);
  console.log(usage(stack));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? `${e.name}: ${e.message}` : e);
  process.exitCode = 1;
});
