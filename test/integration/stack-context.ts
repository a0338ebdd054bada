/** What the integration global setup provides to every test file (see global-setup.ts). */
export interface StackContext {
  region: string;
  /** DynamoDB Local, shared by the whole run (use uniqueName() for tables). */
  dynamoEndpoint: string;
  /** fauxqs directly: no S3 events. Start a dispatcher in front of it when a test needs events. */
  s3Endpoint: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackContext;
  }
}
