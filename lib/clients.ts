import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { S3Client } from "@aws-sdk/client-s3";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { AwsConfig } from "./config.ts";

/** AWS SDK clients, created once per process (cold start) and injected into adapters. */
export interface AwsClients {
  s3: S3Client;
  ddb: DynamoDBDocumentClient;
  lambda: LambdaClient;
}

export function createAwsClients(c: AwsConfig): AwsClients {
  const s3 = new S3Client({
    region: c.AWS_REGION,
    ...(c.S3_ENDPOINT ? { endpoint: c.S3_ENDPOINT } : {}),
    forcePathStyle: c.S3_FORCE_PATH_STYLE,
  });
  const dynamo = new DynamoDBClient({
    region: c.AWS_REGION,
    ...(c.DYNAMODB_ENDPOINT ? { endpoint: c.DYNAMODB_ENDPOINT } : {}),
  });
  const ddb = DynamoDBDocumentClient.from(dynamo, {
    marshallOptions: { removeUndefinedValues: true },
  });
  const lambda = new LambdaClient({
    region: c.AWS_REGION,
    ...(c.LAMBDA_ENDPOINT ? { endpoint: c.LAMBDA_ENDPOINT } : {}),
  });
  return { s3, ddb, lambda };
}
