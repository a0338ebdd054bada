import { z } from "zod";

/**
 * Configuration, read from the environment once at cold start and validated with zod.
 * Each entry point picks the parts it needs; a bad value fails fast with a message naming the variable.
 */

const csv = (v: unknown) =>
  typeof v === "string"
    ? v
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0)
    : v;

const positiveInt = (name: string, dflt: number) =>
  z.coerce
    .number({ error: `${name} must be a number` })
    .int(`${name} must be an integer`)
    .positive(`${name} must be positive`)
    .default(dflt);

const timeZone = z
  .string()
  .default("UTC")
  .refine(
    (tz) => {
      try {
        new Intl.DateTimeFormat("en-US", { timeZone: tz });
        return true;
      } catch {
        return false;
      }
    },
    { error: (i) => `REPORT_TIME_ZONE is not an IANA time zone: ${String(i.input)}` },
  );

export const awsSchema = z.object({
  AWS_REGION: z.string().min(1).default("us-east-1"),
  /** Local stack only: endpoints of the S3 and DynamoDB emulators. */
  S3_ENDPOINT: z.url({ error: "S3_ENDPOINT must be a URL" }).optional(),
  DYNAMODB_ENDPOINT: z.url({ error: "DYNAMODB_ENDPOINT must be a URL" }).optional(),
  /** Local stack only: endpoint of the Lambda Invoke API (infra/lambda-sim.ts). */
  LAMBDA_ENDPOINT: z.url({ error: "LAMBDA_ENDPOINT must be a URL" }).optional(),
  S3_FORCE_PATH_STYLE: z.stringbool().default(false),
});

export const storageSchema = z.object({
  EXPORTS_BUCKET: z
    .string({ error: "EXPORTS_BUCKET is required" })
    .min(3, "EXPORTS_BUCKET must be a bucket or table name"),
  REPORTS_BUCKET: z
    .string({ error: "REPORTS_BUCKET is required" })
    .min(3, "REPORTS_BUCKET must be a bucket or table name"),
  TABLE_NAME: z
    .string({ error: "TABLE_NAME is required" })
    .min(3, "TABLE_NAME must be a bucket or table name"),
  REPORT_TIME_ZONE: timeZone,
  /** Key-hash parts of staged rows; a power of two, so that a changed count still lines up with earlier files. */
  STAGING_PARTITIONS: positiveInt("STAGING_PARTITIONS", 8).refine((n) => n <= 256 && (n & (n - 1)) === 0, {
    error: "STAGING_PARTITIONS must be a power of two from 1 to 256",
  }),
});

/** Report publishing and the ingestion -> aggregation trigger. */
export const reportsSchema = z.object({
  /** Superseded report runs are deleted this many days after a newer run replaced them. */
  REPORT_RETENTION_DAYS: positiveInt("REPORT_RETENTION_DAYS", 30),
  /** The aggregation holds at most this many staged rows of a part at once (more: several passes over it). */
  AGGREGATE_MAX_ROWS_PER_PASS: positiveInt("AGGREGATE_MAX_ROWS_PER_PASS", 1_000_000),
  /** SQS queue the ingest function signals after committing files (unset: the schedule alone). */
  AGGREGATE_QUEUE_URL: z.url({ error: "AGGREGATE_QUEUE_URL must be a URL" }).optional(),
});

/** The aggregation's fan-out: one invocation of AGGREGATE_PART_FUNCTION per key-hash part. */
export const fanoutSchema = z
  .object({
    /** off: every part in the aggregating process; lambda: parts run in AGGREGATE_PART_FUNCTION. */
    AGGREGATE_FANOUT: z
      .enum(["off", "lambda"], { error: "AGGREGATE_FANOUT must be off or lambda" })
      .default("off"),
    AGGREGATE_PART_FUNCTION: z.string().optional(),
    /** Fan out only when a run reads at least this many staged rows (smaller runs stay in process). */
    AGGREGATE_FANOUT_MIN_ROWS: positiveInt("AGGREGATE_FANOUT_MIN_ROWS", 2_000_000),
    /** Parts running at once. */
    AGGREGATE_FANOUT_CONCURRENCY: positiveInt("AGGREGATE_FANOUT_CONCURRENCY", 16),
  })
  .refine((c) => c.AGGREGATE_FANOUT === "off" || (c.AGGREGATE_PART_FUNCTION ?? "") !== "", {
    error: "AGGREGATE_PART_FUNCTION is required when AGGREGATE_FANOUT is lambda",
    path: ["AGGREGATE_PART_FUNCTION"],
  });

export const ingestSchema = z.object({
  /** JSON object mapping a delivered column name to the canonical one, e.g. {"Member":"dim_event_user_id"}. */
  COLUMN_MAP: z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (s === undefined || s.trim() === "") return {} as Record<string, string>;
      try {
        return z.record(z.string(), z.string()).parse(JSON.parse(s));
      } catch {
        ctx.addIssue({ code: "custom", message: "COLUMN_MAP must be a JSON object of strings" });
        return z.NEVER;
      }
    }),
  MAX_FIELD_BYTES: positiveInt("MAX_FIELD_BYTES", 64 * 1024),
  MAX_RECORD_BYTES: positiveInt("MAX_RECORD_BYTES", 1024 * 1024),
  /** Number format of the exports: `none` (plain `1234.5`; grouping rejected), `en` (`1,234.5`), `de` (`1.234,5`). */
  NUMBER_LOCALE: z
    .enum(["none", "en", "de"], { error: "NUMBER_LOCALE must be none, en or de" })
    .default("none"),
});

export const capillarySchema = z
  .object({
    CAPILLARY_BASE_URL: z.url({ error: "CAPILLARY_BASE_URL is required and must be a URL" }),
    CAPILLARY_AUTH: z.enum(["oauth", "basic"]).default("oauth"),
    CAPILLARY_OAUTH_KEY: z.string().optional(),
    CAPILLARY_OAUTH_SECRET: z.string().optional(),
    CAPILLARY_USERNAME: z.string().optional(),
    CAPILLARY_PASSWORD: z.string().optional(),
    /** Lambda: credentials from SSM parameters `<prefix>/oauth-key`, `/oauth-secret` (or `/username`, `/password`). */
    CAPILLARY_CREDENTIALS_SSM_PREFIX: z
      .string()
      .regex(
        /^\/[^\s]*[^/\s]$/,
        "CAPILLARY_CREDENTIALS_SSM_PREFIX must be a parameter path like /app/capillary",
      )
      .optional(),
    CAPILLARY_GROUP_IDS: z
      .preprocess(csv, z.array(z.string().regex(/^\d+$/, "group ids are digits")))
      .default([]),
    CAPILLARY_GROUP_EXTERNAL_IDS: z.preprocess(csv, z.array(z.string())).default([]),
    CAPILLARY_GROUP_SEARCH: z.preprocess(csv, z.array(z.string())).default([]),
    CAPILLARY_RATE_PER_SECOND: positiveInt("CAPILLARY_RATE_PER_SECOND", 10),
    CAPILLARY_TIMEOUT_MS: positiveInt("CAPILLARY_TIMEOUT_MS", 10_000),
    CAPILLARY_MAX_RETRIES: z.coerce.number().int().min(0).default(4),
    CAPILLARY_PAGE_SIZE: positiveInt("CAPILLARY_PAGE_SIZE", 100),
  })
  .superRefine((c, ctx) => {
    // Credentials fetched at run time (SSM) need none in the environment.
    if (c.CAPILLARY_CREDENTIALS_SSM_PREFIX) return;
    if (c.CAPILLARY_AUTH === "oauth" && (!c.CAPILLARY_OAUTH_KEY || !c.CAPILLARY_OAUTH_SECRET)) {
      ctx.addIssue({
        code: "custom",
        message: "CAPILLARY_AUTH=oauth needs CAPILLARY_OAUTH_KEY and CAPILLARY_OAUTH_SECRET",
      });
    }
    if (c.CAPILLARY_AUTH === "basic" && (!c.CAPILLARY_USERNAME || !c.CAPILLARY_PASSWORD)) {
      ctx.addIssue({
        code: "custom",
        message: "CAPILLARY_AUTH=basic needs CAPILLARY_USERNAME and CAPILLARY_PASSWORD",
      });
    }
  });

/** The group sync's own settings (discovery sources beyond the API, run budget, continuation). */
export const syncSchema = z.object({
  /** JSON: one object of extended field name -> value per search, e.g. [{"region":"north"}] (or one object). */
  CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH: z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (s === undefined || s.trim() === "") return [] as Record<string, string>[];
      const one = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));
      const r = z.union([one, z.array(one)]).safeParse(safeJson(s));
      if (!r.success) {
        ctx.addIssue({
          code: "custom",
          message: "CAPILLARY_GROUP_EXTENDED_FIELD_SEARCH must be a JSON object or an array of objects",
        });
        return z.NEVER;
      }
      const list = Array.isArray(r.data) ? r.data : [r.data];
      return list
        .filter((o) => Object.keys(o).length > 0)
        .map((o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)])));
    }),
  /** Member Care membership CSVs (group id, user id, role) under this prefix of EXPORTS_BUCKET add group ids. */
  MEMBERSHIP_CSV_PREFIX: z.string().default("membership/"),
  /** Also re-sync every known group (not GONE) that this run did not discover. */
  SYNC_KNOWN_GROUPS: z.stringbool().default(true),
  SYNC_CONCURRENCY: positiveInt("SYNC_CONCURRENCY", 4),
  /** An invocation starts no new group once less than this remains; the rest continues in the next one. */
  SYNC_TIME_RESERVE_MS: positiveInt("SYNC_TIME_RESERVE_MS", 90_000),
  /** self: the handler invokes itself (async) to continue an unfinished run; schedule: the next run continues. */
  SYNC_CONTINUE: z.enum(["self", "schedule"]).default("self"),
});

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

export type SyncConfig = z.infer<typeof syncSchema>;
export type AwsConfig = z.infer<typeof awsSchema>;
export type StorageConfig = z.infer<typeof storageSchema>;
export type IngestConfig = z.infer<typeof ingestSchema>;
export type CapillaryConfig = z.infer<typeof capillarySchema>;

export class ConfigError extends Error {
  readonly code = "CONFIG_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

type Infer<T extends readonly z.ZodType[]> = T extends readonly [
  infer H extends z.ZodType,
  ...infer R extends z.ZodType[],
]
  ? z.infer<H> & Infer<R>
  : unknown;

/**
 * Parse `env` with each schema and merge the results; throws a ConfigError listing every bad variable by
 * name (values are never echoed: they may be secrets).
 */
export function loadConfig<const T extends readonly z.ZodType[]>(
  env: NodeJS.ProcessEnv,
  ...schemas: T
): Infer<T> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const schema of schemas) {
    const r = schema.safeParse(env);
    if (r.success) Object.assign(out, r.data);
    else problems.push(...r.error.issues.map((i) => `${i.path.join(".") || "config"}: ${i.message}`));
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  return out as Infer<T>;
}
