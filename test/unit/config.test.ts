import { describe, expect, it } from "vitest";
import {
  awsSchema,
  ConfigError,
  capillarySchema,
  fanoutSchema,
  ingestSchema,
  loadConfig,
  storageSchema,
} from "../../lib/config.ts";

const base = { EXPORTS_BUCKET: "exp-bucket", REPORTS_BUCKET: "rep-bucket", TABLE_NAME: "table" };

describe("configuration is validated at cold start", () => {
  it("applies defaults", () => {
    const c = loadConfig(base, awsSchema, storageSchema, ingestSchema);
    expect(c).toMatchObject({
      AWS_REGION: "us-east-1",
      REPORT_TIME_ZONE: "UTC",
      STAGING_PARTITIONS: 8,
      COLUMN_MAP: {},
    });
    expect(c.S3_FORCE_PATH_STYLE).toBe(false);
  });

  it("names every bad variable at once", () => {
    const bad = { REPORT_TIME_ZONE: "Mars/Base", STAGING_PARTITIONS: "0", COLUMN_MAP: "[1]" };
    const err = (() => {
      try {
        loadConfig(bad, storageSchema, ingestSchema);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    for (const name of [
      "EXPORTS_BUCKET",
      "REPORTS_BUCKET",
      "TABLE_NAME",
      "REPORT_TIME_ZONE",
      "STAGING_PARTITIONS",
      "COLUMN_MAP",
    ]) {
      expect(msg).toContain(name);
    }
  });

  it("requires the credentials of the chosen auth, and never echoes secrets", () => {
    const env = {
      CAPILLARY_BASE_URL: "https://eu.api.capillarytech.com",
      CAPILLARY_AUTH: "basic",
      CAPILLARY_PASSWORD: "hunter2-secret",
    };
    expect(() => loadConfig(env, capillarySchema)).toThrow(/CAPILLARY_USERNAME/);
    try {
      loadConfig(env, capillarySchema);
    } catch (e) {
      expect((e as Error).message).not.toContain("hunter2");
    }
  });

  it("parses lists and the column map", () => {
    const c = loadConfig(
      {
        CAPILLARY_BASE_URL: "http://127.0.0.1:1",
        CAPILLARY_OAUTH_KEY: "k",
        CAPILLARY_OAUTH_SECRET: "s",
        CAPILLARY_GROUP_IDS: " 9, 10 ,,",
      },
      capillarySchema,
    );
    expect(c.CAPILLARY_GROUP_IDS).toEqual(["9", "10"]);
    expect(() =>
      loadConfig({ ...base, CAPILLARY_BASE_URL: "x", CAPILLARY_GROUP_IDS: "9,abc" }, capillarySchema),
    ).toThrow(/digits/);
    expect(loadConfig({ COLUMN_MAP: '{"Member":"dim_event_user_id"}' }, ingestSchema).COLUMN_MAP).toEqual({
      Member: "dim_event_user_id",
    });
  });
});

describe("the aggregation fan-out toggle", () => {
  it("is off by default and needs the part function when on", () => {
    expect(loadConfig({}, fanoutSchema)).toMatchObject({
      AGGREGATE_FANOUT: "off",
      AGGREGATE_FANOUT_MIN_ROWS: 2_000_000,
      AGGREGATE_FANOUT_CONCURRENCY: 16,
    });
    expect(() => loadConfig({ AGGREGATE_FANOUT: "lambda" }, fanoutSchema)).toThrow(
      "AGGREGATE_PART_FUNCTION: AGGREGATE_PART_FUNCTION is required when AGGREGATE_FANOUT is lambda",
    );
    expect(() => loadConfig({ AGGREGATE_FANOUT: "stepfunctions" }, fanoutSchema)).toThrow(
      "AGGREGATE_FANOUT must be off or lambda",
    );
    expect(
      loadConfig(
        { AGGREGATE_FANOUT: "lambda", AGGREGATE_PART_FUNCTION: "glr-prod-aggregate-part" },
        fanoutSchema,
      ),
    ).toMatchObject({ AGGREGATE_FANOUT: "lambda", AGGREGATE_PART_FUNCTION: "glr-prod-aggregate-part" });
  });
});

describe("STAGING_PARTITIONS", () => {
  it("is a power of two up to 256 (files staged with an earlier count still line up)", () => {
    for (const ok of ["1", "2", "16", "256"])
      expect(loadConfig({ ...base, STAGING_PARTITIONS: ok }, storageSchema).STAGING_PARTITIONS).toBe(
        Number(ok),
      );
    for (const bad of ["3", "12", "512"])
      expect(() => loadConfig({ ...base, STAGING_PARTITIONS: bad }, storageSchema)).toThrow(
        "STAGING_PARTITIONS must be a power of two from 1 to 256",
      );
  });
});
