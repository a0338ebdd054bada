import { Logger } from "@aws-lambda-powertools/logger";

/**
 * One structured JSON logger for the whole process. Log ids (file id, group id, run id, request id),
 * counts and codes; never names, mobiles, emails, credentials or tokens.
 */
export const logger = new Logger({
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "group-loyalty-reports",
});

/** What use cases need of a logger: the Powertools Logger fits, and so does a test fake. */
export interface Log {
  info(message: string, attributes: Record<string, unknown>): void;
  warn(message: string, attributes: Record<string, unknown>): void;
}
