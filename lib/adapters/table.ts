import type { CreateTableCommandInput } from "@aws-sdk/client-dynamodb";

/**
 * The single DynamoDB table (DESIGN.md "DynamoDB"): string keys `pk`/`sk`, and GSI1 (`gsi1pk`/`gsi1sk`)
 * that finds a member's groups. serverless.yml declares the same table; the local stack creates it from this.
 */
export const GSI1 = "GSI1";

export function tableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [
      { AttributeName: "pk", AttributeType: "S" },
      { AttributeName: "sk", AttributeType: "S" },
      { AttributeName: "gsi1pk", AttributeType: "S" },
      { AttributeName: "gsi1sk", AttributeType: "S" },
    ],
    KeySchema: [
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: GSI1,
        KeySchema: [
          { AttributeName: "gsi1pk", KeyType: "HASH" },
          { AttributeName: "gsi1sk", KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "ALL" },
      },
    ],
  };
}

export const keys = {
  groupMeta: (groupId: string) => ({ pk: `GROUP#${groupId}`, sk: "META" }),
  membership: (groupId: string, userId: string) => ({
    pk: `GROUP#${groupId}`,
    sk: `MEMBER#${userId}`,
    gsi1pk: `MEMBER#${userId}`,
    gsi1sk: `GROUP#${groupId}`,
  }),
  ledger: (fileId: string) => ({ pk: `FILE#${fileId}`, sk: "LEDGER" }),
  period: (period: string) => ({ pk: `PERIOD#${period}`, sk: "STATE" }),
} as const;
