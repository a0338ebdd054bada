import { createHash } from "node:crypto";
import { parse } from "lossless-json";
import { z } from "zod";
import type { CapillaryConfig } from "../config.ts";
import type { CapillaryApi, CapillaryGroup, CapillaryGroupRef, CapillaryMember } from "../ports.ts";

/**
 * CapillaryApi over HTTP (user group API v2, shared/domain/CAPILLARY.md).
 *
 * - Auth: OAuth token (`POST /v3/oauth/token/generate`) fetched on first use, cached, refreshed shortly
 *   before it expires and once on a 401; or Basic base64(username:md5hex(password)). Credentials and tokens
 *   never reach a log entry or an error message.
 * - Every request: token bucket (CAPILLARY_RATE_PER_SECOND, no burst: requests are spaced 1/rate apart),
 *   a timeout (CAPILLARY_TIMEOUT_MS, also covering the body), retries (CAPILLARY_MAX_RETRIES) on 429
 *   (Retry-After in seconds or as an HTTP date; exponential backoff when absent), 5xx, network errors and
 *   timeouts (exponential backoff, full jitter). A Retry-After beyond 2 minutes is not slept: it fails now.
 * - Bodies are parsed losslessly (every JSON number kept as its text) and validated with zod: ids are
 *   strings, decimals stay decimal text. Warnings (e.g. 1656) are passed through, never failures.
 * - Pagination completeness: pages are read with offset += rows received until `total` or an empty page.
 *   Rows are de-duplicated by id. When a pass is not stable (the total changed between pages, or a row
 *   came twice, i.e. the list shifted under us), the listing is read again from offset 0 and the rows not
 *   yet seen are yielded, until a pass is stable (at most 4 passes, else CAPILLARY_PAGINATION_UNSTABLE).
 *   So a member inserted or removed between two pages cannot be missed. Limitation: an insert and a delete
 *   between the same two pages that leave the total unchanged and shift nothing net are not detectable
 *   from this API; the next sync sees them.
 */

export type Credentials =
  | { kind: "oauth"; key: string; secret: string }
  | { kind: "basic"; username: string; password: string };

export interface CapillaryApiDeps {
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  random?: () => number;
  credentials?: () => Promise<Credentials>;
  log?: (entry: Record<string, unknown>) => void;
}

export interface CapillaryApiStats {
  requests: number;
  retries: number;
  throttled: number;
}

export class CapillaryApiError extends Error {
  readonly code: string;
  readonly status: number | null;
  /** URL path only, no query string. */
  readonly path: string;
  readonly attempts: number;
  /** Capillary error codes from the body, when it had any. */
  readonly capillaryCodes: number[];
  constructor(
    code: string,
    message: string,
    d: { status?: number | null; path: string; attempts: number; capillaryCodes?: number[] },
  ) {
    super(message);
    this.name = "CapillaryApiError";
    this.code = code;
    this.status = d.status ?? null;
    this.path = d.path;
    this.attempts = d.attempts;
    this.capillaryCodes = d.capillaryCodes ?? [];
  }
}

const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 20_000;
const MAX_RETRY_AFTER_MS = 120_000;
const TOKEN_MARGIN_MS = 60_000;
const MAX_PASSES = 4;
/** Guards against a server whose pagination never ends (10,000 pages of 100 = 1M rows). */
const MAX_PAGES_PER_PASS = 10_000;
const MAX_PAGES_WITHOUT_NEW_ROWS = 3;
const TOKEN_PATH = "/v3/oauth/token/generate";
const ERR_GROUP_NOT_VALID = 1632;

// ---------- response schemas (over lossless-parsed JSON: every number is its text) ----------

const idText = z.string().regex(/^\d+$/, "expected a numeric id");
const decimalText = z.string().regex(/^-?\d+(\.\d+)?$/, "expected a decimal");
const intText = z
  .string()
  .regex(/^-?\d+$/, "expected an integer")
  .transform((s) => Number(s));
const bool = z.union([z.boolean(), z.enum(["true", "false"]).transform((s) => s === "true")]);
const optBool = bool.nullish().transform((b) => b ?? false);
const optText = z
  .string()
  .nullish()
  .transform((s) => (s === undefined || s === null || s === "" ? null : s));
const warningsSchema = z
  .array(z.object({ code: intText, message: z.string().nullish() }))
  .nullish()
  .transform((ws) => (ws ?? []).map((w) => ({ code: w.code, message: w.message ?? "" })));

const errorBodySchema = z.object({
  errors: z.array(z.object({ code: intText.nullish() })).nullish(),
});

const groupSchema = z.object({
  id: idText,
  externalId: optText,
  groupName: z.string(),
  groupStatus: z.string(),
  fleetGroupUsers: z
    .array(z.object({ userId: idText, primaryMember: optBool, defaultGroup: optBool, active: bool }))
    .nullish(),
  pointsSummaries: z
    .array(
      z.object({
        programId: idText,
        programTitle: optText,
        loyaltyPoints: decimalText,
        lifetimePoints: decimalText.nullish(),
        currentSlab: optText,
        slabSNo: intText.nullish(),
      }),
    )
    .nullish(),
  warnings: warningsSchema,
});

const memberRowSchema = z.object({
  fleetUserId: idText,
  joinedOn: optText.refine((v) => v === null || /^\d{4}-\d{2}-\d{2}/.test(v), "expected YYYY-MM-DD"),
  role: z.string(),
  permissions: z.union([z.string(), z.array(z.string())]).nullish(),
  primaryMember: optBool,
  // inActive is documented inverted and is not trusted: deliberately not read.
});

const searchRowSchema = z.object({
  groupId: idText,
  groupName: optText,
  groupExternalId: optText,
});

const pageSchema = <T extends z.ZodType>(row: T) =>
  z.object({
    pagination: z.object({ total: intText.nullish() }).nullish(),
    data: z.array(row).nullish(),
  });

const tokenSchema = z.object({ data: z.object({ accessToken: z.string().min(1), ttlSeconds: intText }) });

// ---------- helpers ----------

const md5hex = (s: string) => createHash("md5").update(s).digest("hex");

function splitPermissions(p: string | string[] | null | undefined): string[] {
  const parts = Array.isArray(p) ? p : (p ?? "").split(",");
  return parts.map((s) => s.trim()).filter((s) => s.length > 0);
}

/** Retry-After: delta seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(value: string | null, nowMs: number): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.ceil(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/** A network error's stable code (ECONNREFUSED...), never its message (it may echo a URL or header). */
function networkCode(e: unknown): string {
  const cause = typeof e === "object" && e !== null && "cause" in e ? e.cause : undefined;
  const code = typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined;
  return typeof code === "string" && /^[A-Z0-9_]{1,40}$/.test(code) ? code : "NETWORK";
}

function losslessParse(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: parse(text, undefined, (s: string) => s) };
  } catch {
    return { ok: false };
  }
}

function capillaryCodes(body: unknown): number[] {
  const r = errorBodySchema.safeParse(body);
  if (!r.success) return [];
  return (r.data.errors ?? []).flatMap((e) => (typeof e.code === "number" ? [e.code] : []));
}

type Outcome =
  | { kind: "response"; status: number; headers: Headers; text: string }
  | { kind: "timeout" }
  | { kind: "network"; code: string };

interface HttpResult {
  status: number;
  body: unknown;
  codes: number[];
  attempts: number;
  path: string;
}

// ---------- the client ----------

export function createCapillaryApi(
  config: CapillaryConfig,
  deps: CapillaryApiDeps = {},
): CapillaryApi & { stats(): CapillaryApiStats } {
  const fetchImpl = deps.fetch ?? fetch;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const log = deps.log ?? (() => {});
  const base = config.CAPILLARY_BASE_URL.replace(/\/+$/, "");
  const pageSize = config.CAPILLARY_PAGE_SIZE;
  const counters: CapillaryApiStats = { requests: 0, retries: 0, throttled: 0 };

  // Token bucket with a capacity of one token: requests are spaced 1000/rate ms apart, in call order.
  const intervalMs = 1000 / config.CAPILLARY_RATE_PER_SECOND;
  let nextSlot = Number.NEGATIVE_INFINITY;
  let bucketQueue: Promise<void> = Promise.resolve();
  const takeToken = (): Promise<void> => {
    const turn = bucketQueue.then(async () => {
      const t = now();
      const start = Math.max(t, nextSlot);
      nextSlot = start + intervalMs;
      // Sub-millisecond waits are not slept (timers cannot do them); the debt carries into nextSlot.
      if (start - t >= 1) await sleep(start - t);
    });
    bucketQueue = turn;
    return turn;
  };

  // ---- credentials and token ----
  let credentials: Promise<Credentials> | null = null;
  let token: { value: string; refreshAt: number } | null = null;
  let tokenInFlight: Promise<string> | null = null;

  const authError = (why: string, path: string, attempts: number, status: number | null = null) =>
    new CapillaryApiError("CAPILLARY_AUTH", `Capillary authentication failed: ${why}`, {
      status,
      path,
      attempts,
    });

  const loadCredentials = (): Promise<Credentials> => {
    if (credentials === null) {
      const fromConfig = async (): Promise<Credentials> => {
        if (config.CAPILLARY_AUTH === "basic") {
          const { CAPILLARY_USERNAME: username, CAPILLARY_PASSWORD: password } = config;
          if (!username || !password) throw authError("basic credentials are not configured", "", 0);
          return { kind: "basic", username, password };
        }
        const { CAPILLARY_OAUTH_KEY: key, CAPILLARY_OAUTH_SECRET: secret } = config;
        if (!key || !secret) throw authError("oauth credentials are not configured", "", 0);
        return { kind: "oauth", key, secret };
      };
      credentials = (deps.credentials ?? fromConfig)().catch((e: unknown) => {
        credentials = null;
        if (e instanceof CapillaryApiError) throw e;
        // CredentialsError messages name the source and parameter, never a value.
        const why = e instanceof Error && e.name === "CredentialsError" ? `: ${e.message}` : "";
        throw authError(`credentials could not be loaded${why}`, "", 0);
      });
    }
    return credentials;
  };

  const fetchToken = async (c: { key: string; secret: string }, reason: string): Promise<string> => {
    log({ event: "capillary_token_request", reason });
    const issuedAt = now();
    const res = await exchange(
      "POST",
      TOKEN_PATH,
      null,
      JSON.stringify({ key: c.key, secret: c.secret }),
      false,
    );
    if (res.status === 400 || res.status === 401 || res.status === 403) {
      credentials = null; // re-read next time (a rotated secret)
      throw authError(`token request refused (HTTP ${res.status})`, TOKEN_PATH, res.attempts, res.status);
    }
    failIfError(res, "POST");
    const body = decode(tokenSchema, res);
    const ttlMs = body.data.ttlSeconds * 1000;
    token = {
      value: body.data.accessToken,
      refreshAt: issuedAt + ttlMs - Math.min(TOKEN_MARGIN_MS, ttlMs / 5),
    };
    return token.value;
  };

  const oauthToken = (c: { key: string; secret: string }): Promise<string> => {
    if (token !== null && now() < token.refreshAt) return Promise.resolve(token.value);
    if (tokenInFlight === null) {
      const reason = token === null ? "initial" : "expiry";
      tokenInFlight = fetchToken(c, reason).finally(() => {
        tokenInFlight = null;
      });
    }
    return tokenInFlight;
  };

  const authHeaders = async (): Promise<Record<string, string>> => {
    const c = await loadCredentials();
    if (c.kind === "basic") {
      const basic = Buffer.from(`${c.username}:${md5hex(c.password)}`, "utf8").toString("base64");
      return { authorization: `Basic ${basic}` };
    }
    try {
      return { "x-cap-api-oauth-token": await oauthToken(c) };
    } catch (e) {
      // The token request was refused: the secret may have been rotated. Re-read it once and retry.
      if (!(e instanceof CapillaryApiError) || e.code !== "CAPILLARY_AUTH" || e.path !== TOKEN_PATH) throw e;
      const fresh = await loadCredentials();
      if (fresh.kind !== "oauth" || (fresh.key === c.key && fresh.secret === c.secret)) throw e;
      log({ event: "capillary_credentials_reloaded" });
      return { "x-cap-api-oauth-token": await oauthToken(fresh) };
    }
  };

  // ---- one HTTP attempt ----
  const once = async (url: string, init: RequestInit): Promise<Outcome> => {
    const ctrl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctrl.abort();
    }, config.CAPILLARY_TIMEOUT_MS);
    try {
      counters.requests += 1;
      const res = await fetchImpl(url, { ...init, signal: ctrl.signal });
      const text = await res.text();
      return { kind: "response", status: res.status, headers: res.headers, text };
    } catch (e) {
      return timedOut ? { kind: "timeout" } : { kind: "network", code: networkCode(e) };
    } finally {
      clearTimeout(timer);
    }
  };

  const backoff = (retry: number) => random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (retry - 1));

  // ---- a request with rate limit, auth, timeout and retries ----
  async function exchange(
    method: "GET" | "POST",
    path: string,
    query: Record<string, string> | null,
    body: string | null,
    authed: boolean,
  ): Promise<HttpResult> {
    const url = `${base}${path}${query ? `?${new URLSearchParams(query).toString()}` : ""}`;
    let attempts = 0;
    let retries = 0;
    let refreshedOn401 = false;
    for (;;) {
      await takeToken();
      const headers: Record<string, string> = { accept: "application/json" };
      if (body !== null) headers["content-type"] = "application/json";
      if (authed) Object.assign(headers, await authHeaders());
      const sentToken = headers["x-cap-api-oauth-token"];
      attempts += 1;
      const out = await once(url, { method, headers, ...(body !== null ? { body } : {}) });

      let reason: string;
      let waitMs: number | null = null;
      if (out.kind === "response") {
        const { status } = out;
        if (status === 401 && authed) {
          const c = await loadCredentials();
          if (c.kind === "oauth" && !refreshedOn401) {
            refreshedOn401 = true;
            if (token !== null && token.value === sentToken) token = null;
            log({ event: "capillary_token_rejected", method, path });
            continue;
          }
          credentials = null; // re-read next time (rotated secret)
          throw authError(`HTTP 401 on ${method} ${path}`, path, attempts, 401);
        }
        if (status !== 429 && status < 500) {
          const parsed = losslessParse(out.text);
          const value = parsed.ok ? parsed.value : undefined;
          return { status, body: value, codes: capillaryCodes(value), attempts, path };
        }
        reason = `HTTP_${status}`;
        if (status === 429) {
          counters.throttled += 1;
          waitMs = retryAfterMs(out.headers.get("retry-after"), now());
        }
        if (retries >= config.CAPILLARY_MAX_RETRIES || (waitMs !== null && waitMs > MAX_RETRY_AFTER_MS)) {
          const codes = (() => {
            const p = losslessParse(out.text);
            return p.ok ? capillaryCodes(p.value) : [];
          })();
          throw new CapillaryApiError(
            `CAPILLARY_HTTP_${status}`,
            `Capillary ${method} ${path} failed: HTTP ${status} after ${attempts} attempt(s)`,
            { status, path, attempts, capillaryCodes: codes },
          );
        }
      } else {
        reason = out.kind === "timeout" ? "TIMEOUT" : out.code;
        if (retries >= config.CAPILLARY_MAX_RETRIES) {
          const code = out.kind === "timeout" ? "CAPILLARY_TIMEOUT" : "CAPILLARY_NETWORK";
          const what =
            out.kind === "timeout"
              ? `timed out after ${config.CAPILLARY_TIMEOUT_MS} ms`
              : `network error ${out.code}`;
          throw new CapillaryApiError(
            code,
            `Capillary ${method} ${path} failed: ${what} after ${attempts} attempt(s)`,
            {
              path,
              attempts,
            },
          );
        }
      }
      retries += 1;
      counters.retries += 1;
      const wait = Math.round(waitMs ?? backoff(retries));
      log({ event: "capillary_retry", method, path, reason, attempt: attempts, waitMs: wait });
      await sleep(wait);
    }
  }

  function decode<T extends z.ZodType>(schema: T, res: HttpResult): z.infer<T> {
    if (res.body === undefined) {
      throw new CapillaryApiError("CAPILLARY_BAD_RESPONSE", `Capillary ${res.path}: body is not JSON`, res);
    }
    const r = schema.safeParse(res.body);
    if (!r.success) {
      const where = r.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join(".") || "body"}: ${i.message}`)
        .join("; ");
      throw new CapillaryApiError(
        "CAPILLARY_BAD_RESPONSE",
        `Capillary ${res.path}: unexpected body (${where})`,
        res,
      );
    }
    return r.data;
  }

  /** Non-2xx, or a 2xx carrying errors: a CapillaryApiError with a stable code. */
  function failIfError(res: HttpResult, method: string): void {
    if (res.status >= 200 && res.status < 300 && res.codes.length === 0) return;
    const d = { status: res.status, path: res.path, attempts: res.attempts, capillaryCodes: res.codes };
    const codes = res.codes.length > 0 ? ` (Capillary codes ${res.codes.join(",")})` : "";
    if (res.codes.includes(ERR_GROUP_NOT_VALID)) {
      throw new CapillaryApiError(
        "CAPILLARY_GROUP_NOT_FOUND",
        `Capillary ${method} ${res.path}: group not valid${codes}`,
        d,
      );
    }
    const code =
      res.status >= 200 && res.status < 300 ? "CAPILLARY_API_ERROR" : `CAPILLARY_HTTP_${res.status}`;
    throw new CapillaryApiError(
      code,
      `Capillary ${method} ${res.path} failed: HTTP ${res.status}${codes}`,
      d,
    );
  }

  // ---- pagination ----
  async function* paginate<R>(
    path: string,
    query: Record<string, string>,
    schema: z.ZodType<{ pagination?: { total?: number | null } | null; data?: R[] | null }>,
    key: (r: R) => string,
    post: { body: string } | null = null,
  ): AsyncGenerator<R> {
    const method = post === null ? "GET" : "POST";
    const seen = new Set<string>();
    for (let pass = 1; pass <= MAX_PASSES; pass++) {
      const inPass = new Set<string>();
      const totals = new Set<number>();
      let shifted = false;
      let offset = 0;
      let pages = 0;
      let pagesWithoutNew = 0;
      for (;;) {
        pages += 1;
        if (pages > MAX_PAGES_PER_PASS) {
          throw new CapillaryApiError(
            "CAPILLARY_PAGINATION_RUNAWAY",
            `Capillary ${method} ${path}: pagination does not end`,
            {
              path,
              attempts: pages,
            },
          );
        }
        const q = { ...query, limit: String(pageSize), offset: String(offset) };
        const res = await exchange(method, path, q, post?.body ?? null, true);
        failIfError(res, method);
        const page = decode(schema, res);
        const total = page.pagination?.total;
        if (typeof total === "number") totals.add(total);
        const rows = page.data ?? [];
        if (rows.length === 0) {
          if (typeof total === "number" && offset < total)
            log({ event: "capillary_list_short", path, offset, total });
          break;
        }
        let fresh = 0;
        for (const r of rows) {
          const k = key(r);
          if (inPass.has(k)) shifted = true;
          else {
            inPass.add(k);
            fresh += 1;
          }
          if (!seen.has(k)) {
            seen.add(k);
            yield r;
          }
        }
        pagesWithoutNew = fresh === 0 ? pagesWithoutNew + 1 : 0;
        if (pagesWithoutNew >= MAX_PAGES_WITHOUT_NEW_ROWS) {
          throw new CapillaryApiError(
            "CAPILLARY_PAGINATION_RUNAWAY",
            `Capillary ${method} ${path}: pages repeat`,
            {
              path,
              attempts: pages,
            },
          );
        }
        offset += rows.length;
        if (typeof total === "number" && offset >= total) break;
      }
      if (totals.size <= 1 && !shifted) return;
      log({ event: "capillary_list_changed", path, pass, totals: [...totals], shifted });
    }
    throw new CapillaryApiError(
      "CAPILLARY_PAGINATION_UNSTABLE",
      `Capillary ${method} ${path}: the list kept changing over ${MAX_PASSES} passes`,
      { path, attempts: MAX_PASSES },
    );
  }

  const memberPage = pageSchema(memberRowSchema);
  const searchPage = pageSchema(searchRowSchema);

  return {
    async getGroup(ref): Promise<CapillaryGroup | null> {
      const q: Record<string, string> = "id" in ref ? { id: ref.id } : { externalId: ref.externalId };
      q.programDetails = "true";
      const res = await exchange("GET", "/v2/userGroup2", q, null, true);
      if (res.codes.includes(ERR_GROUP_NOT_VALID)) return null;
      failIfError(res, "GET");
      const g = decode(groupSchema, res);
      return {
        id: g.id,
        externalId: g.externalId,
        groupName: g.groupName,
        groupStatus: g.groupStatus,
        users: (g.fleetGroupUsers ?? []).map((u) => ({
          userId: u.userId,
          primaryMember: u.primaryMember,
          defaultGroup: u.defaultGroup,
          active: u.active,
        })),
        programs: (g.pointsSummaries ?? []).map((p) => ({
          programId: p.programId,
          programTitle: p.programTitle,
          loyaltyPoints: p.loyaltyPoints,
          lifetimePoints: p.lifetimePoints ?? null,
          currentSlab: p.currentSlab,
          slabSNo: p.slabSNo ?? null,
        })),
        warnings: g.warnings,
      };
    },

    async *listMembers(groupId): AsyncGenerator<CapillaryMember> {
      const query = {
        source: "ALL",
        identifierName: "id",
        identifierValue: groupId,
        paginationDetails: "true",
      };
      for await (const m of paginate("/v2/userGroup2/members", query, memberPage, (r) => r.fleetUserId)) {
        yield {
          userId: m.fleetUserId,
          joinedOn: m.joinedOn ? m.joinedOn.slice(0, 10) : null,
          role: m.role,
          permissions: splitPermissions(m.permissions),
          primaryMember: m.primaryMember,
        };
      }
    },

    async *searchGroups(q): AsyncGenerator<CapillaryGroupRef> {
      for await (const g of paginate("/v2/userGroup2/search", { q }, searchPage, (r) => r.groupId)) {
        yield { groupId: g.groupId, groupName: g.groupName, groupExternalId: g.groupExternalId };
      }
    },

    async *extendedFieldSearch(fields): AsyncGenerator<CapillaryGroupRef> {
      const body = JSON.stringify({ extendedFields: fields });
      const path = "/v2/userGroup2/extendedFieldSearch";
      for await (const g of paginate(path, {}, searchPage, (r) => r.groupId, { body })) {
        yield { groupId: g.groupId, groupName: g.groupName, groupExternalId: g.groupExternalId };
      }
    },

    stats: () => ({ ...counters }),
  };
}
