import { describe, expect, it } from "vitest";
import {
  CapillaryApiError,
  type Credentials,
  createCapillaryApi,
  retryAfterMs,
} from "../../lib/adapters/capillary-api.ts";
import type { CapillaryConfig } from "../../lib/config.ts";

/** The Capillary client against an injected fake fetch: no network, a fake clock, recorded sleeps. */

const KEY = "oauth-key-K3Y";
const SECRET = "oauth-secret-S3CR3T";
const USER = "till.user";
const PASSWORD = "password";
const PASSWORD_MD5 = "5f4dcc3b5aa765d61d8327deb882cf99"; // md5("password"), a well-known value
const BASE = "https://eu.api.capillarytech.com";

interface Call {
  method: string;
  url: URL;
  headers: Headers;
  body: string | null;
}
type Handler = (call: Call, signal: AbortSignal | null) => Response | Promise<Response>;

function json(body: string, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { "content-type": "application/json", ...headers } });
}

const tokenReply = (token: string, ttl = 3600) =>
  json(`{"data":{"accessToken":"${token}","ttlSeconds":${ttl}}}`);
const isToken = (c: Call) => c.url.pathname === "/v3/oauth/token/generate";
const GROUP = (id = "4242", extra = "") =>
  `{"id":${id},"externalId":"E1","groupName":"G","groupStatus":"ACTIVE","fleetGroupUsers":[],"pointsSummaries":[]${extra},"warnings":[]}`;

function setup(opts: {
  handler: Handler;
  config?: Partial<CapillaryConfig>;
  credentials?: () => Promise<Credentials>;
}) {
  const calls: Call[] = [];
  const sleeps: number[] = [];
  const logs: Record<string, unknown>[] = [];
  let clock = 1_700_000_000_000;
  const fakeFetch: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const call: Call = {
      method: init?.method ?? "GET",
      url,
      headers: new Headers(init?.headers),
      body: typeof init?.body === "string" ? init.body : null,
    };
    calls.push(call);
    return opts.handler(call, init?.signal ?? null);
  };
  const config: CapillaryConfig = {
    CAPILLARY_BASE_URL: `${BASE}/`,
    CAPILLARY_AUTH: "oauth",
    CAPILLARY_OAUTH_KEY: KEY,
    CAPILLARY_OAUTH_SECRET: SECRET,
    CAPILLARY_USERNAME: USER,
    CAPILLARY_PASSWORD: PASSWORD,
    CAPILLARY_GROUP_IDS: [],
    CAPILLARY_GROUP_EXTERNAL_IDS: [],
    CAPILLARY_GROUP_SEARCH: [],
    CAPILLARY_RATE_PER_SECOND: 1000,
    CAPILLARY_TIMEOUT_MS: 2000,
    CAPILLARY_MAX_RETRIES: 3,
    CAPILLARY_PAGE_SIZE: 100,
    ...opts.config,
  };
  const api = createCapillaryApi(config, {
    fetch: fakeFetch,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock += ms;
    },
    now: () => clock,
    random: () => 0.5,
    log: (e) => logs.push(e),
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
  });
  return {
    api,
    calls,
    sleeps,
    logs,
    advance: (ms: number) => {
      clock += ms;
    },
    retryWaits: () => logs.filter((l) => l.event === "capillary_retry").map((l) => l.waitMs),
  };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => {
      if (!(e instanceof CapillaryApiError)) throw e;
      return e;
    },
  );

describe("auth", () => {
  it("fetches an OAuth token once, sends it as X-CAP-API-OAUTH-TOKEN and caches it", async () => {
    const t = setup({ handler: (c) => (isToken(c) ? tokenReply("tok-1") : json(GROUP())) });
    await t.api.getGroup({ id: "4242" });
    await t.api.getGroup({ id: "4242" });
    expect(t.calls.map((c) => c.url.pathname)).toEqual([
      "/v3/oauth/token/generate",
      "/v2/userGroup2",
      "/v2/userGroup2",
    ]);
    expect(t.calls[0]?.method).toBe("POST");
    expect(JSON.parse(t.calls[0]?.body ?? "")).toEqual({ key: KEY, secret: SECRET });
    expect(t.calls[1]?.headers.get("x-cap-api-oauth-token")).toBe("tok-1");
    expect(t.calls[1]?.headers.get("authorization")).toBeNull();
    expect(t.calls[1]?.url.origin).toBe(BASE);
    expect(Object.fromEntries(t.calls[1]?.url.searchParams ?? [])).toEqual({
      id: "4242",
      programDetails: "true",
    });
  });

  it("shares one token request between concurrent calls", async () => {
    let n = 0;
    const t = setup({ handler: (c) => (isToken(c) ? tokenReply(`tok-${++n}`) : json(GROUP())) });
    await Promise.all([
      t.api.getGroup({ id: "1" }),
      t.api.getGroup({ id: "2" }),
      t.api.getGroup({ id: "3" }),
    ]);
    expect(t.calls.filter(isToken)).toHaveLength(1);
  });

  it("refreshes the token before it expires (ttl minus a margin)", async () => {
    let n = 0;
    const t = setup({ handler: (c) => (isToken(c) ? tokenReply(`tok-${++n}`, 100) : json(GROUP())) });
    await t.api.getGroup({ id: "1" });
    t.advance(79_000); // margin = min(60 s, ttl/5 = 20 s): refresh from 80 s on
    await t.api.getGroup({ id: "1" });
    expect(t.calls.filter(isToken)).toHaveLength(1);
    t.advance(2_000);
    await t.api.getGroup({ id: "1" });
    expect(t.calls.filter(isToken)).toHaveLength(2);
    expect(t.calls.at(-1)?.headers.get("x-cap-api-oauth-token")).toBe("tok-2");
    expect(t.logs.filter((l) => l.event === "capillary_token_request").map((l) => l.reason)).toEqual([
      "initial",
      "expiry",
    ]);
  });

  it("on a 401 refreshes the token once and retries the request", async () => {
    let n = 0;
    const t = setup({
      handler: (c) => {
        if (isToken(c)) return tokenReply(`tok-${++n}`);
        return c.headers.get("x-cap-api-oauth-token") === "tok-1" ? json("{}", 401) : json(GROUP());
      },
    });
    expect((await t.api.getGroup({ id: "4242" }))?.id).toBe("4242");
    expect(t.calls.map((c) => [c.url.pathname, c.headers.get("x-cap-api-oauth-token")])).toEqual([
      ["/v3/oauth/token/generate", null],
      ["/v2/userGroup2", "tok-1"],
      ["/v3/oauth/token/generate", null],
      ["/v2/userGroup2", "tok-2"],
    ]);
  });

  it("a second 401 after the refresh is CAPILLARY_AUTH (no endless refresh)", async () => {
    const t = setup({ handler: (c) => (isToken(c) ? tokenReply("tok") : json("{}", 401)) });
    const e = await errorOf(t.api.getGroup({ id: "4242" }));
    expect(e).toMatchObject({ code: "CAPILLARY_AUTH", status: 401, path: "/v2/userGroup2" });
    expect(t.calls.filter(isToken)).toHaveLength(2);
  });

  it("a refused token request is CAPILLARY_AUTH", async () => {
    const t = setup({
      handler: () => json(`{"warnings":[],"errors":[{"status":false,"code":401,"message":"x"}]}`, 401),
    });
    const e = await errorOf(t.api.getGroup({ id: "4242" }));
    expect(e).toMatchObject({ code: "CAPILLARY_AUTH", status: 401, path: "/v3/oauth/token/generate" });
  });

  it("Basic auth sends base64(username:md5hex(password)) and asks for no token", async () => {
    const t = setup({ config: { CAPILLARY_AUTH: "basic" }, handler: () => json(GROUP()) });
    await t.api.getGroup({ id: "4242" });
    expect(t.calls).toHaveLength(1);
    const h = t.calls[0]?.headers.get("authorization") ?? "";
    expect(h).toBe(`Basic ${Buffer.from(`${USER}:${PASSWORD_MD5}`).toString("base64")}`);
    expect(t.calls[0]?.headers.get("x-cap-api-oauth-token")).toBeNull();
    await t.api.getGroup({ id: "4242" });
    expect(t.calls).toHaveLength(2);
  });

  it("Basic: a 401 is CAPILLARY_AUTH at once", async () => {
    const t = setup({ config: { CAPILLARY_AUTH: "basic" }, handler: () => json("{}", 401) });
    expect(await errorOf(t.api.getGroup({ id: "1" }))).toMatchObject({ code: "CAPILLARY_AUTH", attempts: 1 });
  });

  it("takes credentials from deps.credentials when given", async () => {
    const t = setup({
      credentials: async () => ({ kind: "oauth", key: "from-ssm", secret: "ssm-secret" }),
      handler: (c) => (isToken(c) ? tokenReply("t") : json(GROUP())),
    });
    await t.api.getGroup({ id: "1" });
    expect(JSON.parse(t.calls[0]?.body ?? "")).toEqual({ key: "from-ssm", secret: "ssm-secret" });
  });

  it("a credentials loader failure is CAPILLARY_AUTH without the loader's message", async () => {
    const t = setup({
      credentials: async () => {
        throw new Error(`ssm said ${SECRET}`);
      },
      handler: () => json(GROUP()),
    });
    const e = await errorOf(t.api.getGroup({ id: "1" }));
    expect(e.code).toBe("CAPILLARY_AUTH");
    expect(e.message).not.toContain(SECRET);
    expect(t.calls).toHaveLength(0);
  });
});

describe("rate limit, retries, timeouts", () => {
  it("spaces requests 1/rate apart", async () => {
    const t = setup({
      config: { CAPILLARY_AUTH: "basic", CAPILLARY_RATE_PER_SECOND: 10 },
      handler: () => json(GROUP()),
    });
    for (let i = 0; i < 5; i++) await t.api.getGroup({ id: "1" });
    expect(t.sleeps).toEqual([100, 100, 100, 100]);
  });

  it("honours 429 Retry-After in seconds", async () => {
    let n = 0;
    const t = setup({
      config: { CAPILLARY_AUTH: "basic" },
      handler: () => (++n === 1 ? json("{}", 429, { "retry-after": "2" }) : json(GROUP())),
    });
    expect((await t.api.getGroup({ id: "4242" }))?.id).toBe("4242");
    expect(t.retryWaits()).toEqual([2000]);
    expect(t.sleeps).toContain(2000);
    expect(t.api.stats()).toEqual({ requests: 2, retries: 1, throttled: 1 });
  });

  it("honours 429 Retry-After as an HTTP date", async () => {
    let n = 0;
    const t = setup({
      config: { CAPILLARY_AUTH: "basic" },
      handler: () =>
        ++n === 1
          ? json("{}", 429, { "retry-after": new Date(1_700_000_003_000).toUTCString() })
          : json(GROUP()),
    });
    await t.api.getGroup({ id: "4242" });
    expect(t.retryWaits()).toEqual([3000]);
  });

  it("parses Retry-After forms", () => {
    expect(retryAfterMs("1", 0)).toBe(1000);
    expect(retryAfterMs(" 0.5 ", 0)).toBe(500);
    expect(retryAfterMs("Thu, 01 Jan 1970 00:00:10 GMT", 4000)).toBe(6000);
    expect(retryAfterMs("Thu, 01 Jan 1970 00:00:10 GMT", 20_000)).toBe(0);
    expect(retryAfterMs("soon", 0)).toBeNull();
    expect(retryAfterMs(null, 0)).toBeNull();
  });

  it("a 503 then success: one retry after a jittered backoff", async () => {
    let n = 0;
    const t = setup({
      config: { CAPILLARY_AUTH: "basic" },
      handler: () => (++n === 1 ? json("", 503) : json(GROUP())),
    });
    expect((await t.api.getGroup({ id: "4242" }))?.id).toBe("4242");
    expect(t.retryWaits()).toEqual([125]); // random 0.5 * 250 ms
    expect(t.api.stats()).toMatchObject({ retries: 1, throttled: 0 });
  });

  it("backs off exponentially and gives up after CAPILLARY_MAX_RETRIES with CAPILLARY_HTTP_503", async () => {
    const t = setup({
      config: { CAPILLARY_AUTH: "basic", CAPILLARY_MAX_RETRIES: 3 },
      handler: () => json("", 503),
    });
    const e = await errorOf(t.api.getGroup({ id: "4242" }));
    expect(e).toMatchObject({ code: "CAPILLARY_HTTP_503", status: 503, path: "/v2/userGroup2", attempts: 4 });
    expect(e.message).not.toContain("4242");
    expect(t.calls).toHaveLength(4);
    expect(t.retryWaits()).toEqual([125, 250, 500]);
  });

  it("a 429 without Retry-After backs off; retries capped -> CAPILLARY_HTTP_429", async () => {
    const t = setup({
      config: { CAPILLARY_AUTH: "basic", CAPILLARY_MAX_RETRIES: 1 },
      handler: () => json("{}", 429),
    });
    expect(await errorOf(t.api.getGroup({ id: "1" }))).toMatchObject({
      code: "CAPILLARY_HTTP_429",
      attempts: 2,
    });
    expect(t.api.stats()).toEqual({ requests: 2, retries: 1, throttled: 2 });
  });

  it("a Retry-After beyond two minutes fails at once instead of sleeping", async () => {
    const t = setup({
      config: { CAPILLARY_AUTH: "basic" },
      handler: () => json("{}", 429, { "retry-after": "3600" }),
    });
    expect(await errorOf(t.api.getGroup({ id: "1" }))).toMatchObject({
      code: "CAPILLARY_HTTP_429",
      attempts: 1,
    });
    expect(t.sleeps).toEqual([]);
  });

  const hang: Handler = (_c, signal) =>
    new Promise<Response>((_resolve, reject) => {
      signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
    });

  it("a request that exceeds CAPILLARY_TIMEOUT_MS is aborted and retried", async () => {
    let n = 0;
    const t = setup({
      config: { CAPILLARY_AUTH: "basic", CAPILLARY_TIMEOUT_MS: 20 },
      handler: (c, s) => (++n === 1 ? hang(c, s) : json(GROUP())),
    });
    expect((await t.api.getGroup({ id: "4242" }))?.id).toBe("4242");
    expect(t.logs.filter((l) => l.event === "capillary_retry").map((l) => l.reason)).toEqual(["TIMEOUT"]);
  });

  it("timeouts on every attempt -> CAPILLARY_TIMEOUT", async () => {
    const t = setup({
      config: { CAPILLARY_AUTH: "basic", CAPILLARY_TIMEOUT_MS: 10, CAPILLARY_MAX_RETRIES: 2 },
      handler: hang,
    });
    expect(await errorOf(t.api.getGroup({ id: "1" }))).toMatchObject({
      code: "CAPILLARY_TIMEOUT",
      status: null,
      attempts: 3,
    });
  });

  it("network errors are retried, then CAPILLARY_NETWORK naming only the error code", async () => {
    const t = setup({
      config: { CAPILLARY_AUTH: "basic", CAPILLARY_MAX_RETRIES: 1 },
      handler: () => {
        throw new TypeError(`fetch failed for ${SECRET}`, { cause: { code: "ECONNREFUSED" } });
      },
    });
    const e = await errorOf(t.api.getGroup({ id: "1" }));
    expect(e).toMatchObject({ code: "CAPILLARY_NETWORK", attempts: 2 });
    expect(e.message).toContain("ECONNREFUSED");
    expect(e.message).not.toContain(SECRET);
  });

  it("other 4xx are not retried", async () => {
    const t = setup({
      config: { CAPILLARY_AUTH: "basic" },
      handler: () => json(`{"warnings":[],"errors":[{"status":false,"code":1500,"message":"bad"}]}`, 400),
    });
    const e = await errorOf(t.api.getGroup({ id: "1" }));
    expect(e).toMatchObject({ code: "CAPILLARY_HTTP_400", status: 400, attempts: 1, capillaryCodes: [1500] });
  });
});

describe("bodies", () => {
  const basic = { CAPILLARY_AUTH: "basic" as const };

  it("keeps ids beyond 2^53 and 19-digit ids exact, and decimals as their text", async () => {
    const body = `{"id":9007199254740993,"externalId":12345678901234567890,"groupName":"Big","groupStatus":"ACTIVE",
      "fleetGroupUsers":[{"userId":1234567890123456789,"groupId":9007199254740993,"primaryMember":true,"defaultGroup":false,"active":true},
        {"userId":9223372036854775807,"groupId":9007199254740993,"primaryMember":false,"defaultGroup":true,"active":false}],
      "pointsSummaries":[{"programId":9007199254740995,"programTitle":"P","loyaltyPoints":12345.670,"lifetimePoints":0.001,
        "redeemed":1,"expired":0,"currentSlab":"Gold","slabSNo":2}],"extendedFields":{},"warnings":[]}`;
    const t = setup({ config: basic, handler: () => json(body) });
    const g = await t.api.getGroup({ id: "9007199254740993" });
    expect(t.calls[0]?.url.searchParams.get("id")).toBe("9007199254740993");
    expect(g).toEqual({
      id: "9007199254740993",
      externalId: "12345678901234567890",
      groupName: "Big",
      groupStatus: "ACTIVE",
      users: [
        { userId: "1234567890123456789", primaryMember: true, defaultGroup: false, active: true },
        { userId: "9223372036854775807", primaryMember: false, defaultGroup: true, active: false },
      ],
      programs: [
        {
          programId: "9007199254740995",
          programTitle: "P",
          loyaltyPoints: "12345.670",
          lifetimePoints: "0.001",
          currentSlab: "Gold",
          slabSNo: 2,
        },
      ],
      warnings: [],
    });
  });

  it("error 1632 means the group is gone: null (HTTP 400 or 200)", async () => {
    const e1632 = `{"warnings":[],"errors":[{"status":false,"code":1632,"message":"Group id not valid"}]}`;
    for (const status of [400, 200]) {
      const t = setup({ config: basic, handler: () => json(e1632, status) });
      expect(await t.api.getGroup({ externalId: "EXT" })).toBeNull();
      expect(t.calls[0]?.url.searchParams.get("externalId")).toBe("EXT");
    }
  });

  it("warning 1656 on a valid group is passed through, not a failure", async () => {
    const body = GROUP("7", "").replace(
      `"warnings":[]`,
      `"warnings":[{"status":true,"code":1656,"message":"group has pending updates"}]`,
    );
    const t = setup({ config: basic, handler: () => json(body) });
    const g = await t.api.getGroup({ id: "7" });
    expect(g?.id).toBe("7");
    expect(g?.warnings).toEqual([{ code: 1656, message: "group has pending updates" }]);
  });

  it("an unexpected body is CAPILLARY_BAD_RESPONSE (zod), and so is non-JSON", async () => {
    const noName = json(`{"id":1,"groupStatus":"ACTIVE"}`);
    const t1 = setup({ config: basic, handler: () => noName });
    const e1 = await errorOf(t1.api.getGroup({ id: "1" }));
    expect(e1).toMatchObject({ code: "CAPILLARY_BAD_RESPONSE", path: "/v2/userGroup2" });
    expect(e1.message).toContain("groupName");
    const t2 = setup({ config: basic, handler: () => json("<html>oops</html>") });
    expect(await errorOf(t2.api.getGroup({ id: "1" }))).toMatchObject({ code: "CAPILLARY_BAD_RESPONSE" });
    const t3 = setup({ config: basic, handler: () => json(GROUP("1.5")) });
    expect(await errorOf(t3.api.getGroup({ id: "1" }))).toMatchObject({ code: "CAPILLARY_BAD_RESPONSE" });
  });

  it("members: permissions as a string or an array; inActive is ignored; ids exact", async () => {
    const rows = `[{"fleetUserId":1234567890123456789,"joinedOn":"2024-02-29","role":"PRIMARY","permissions":"REDEEM, VIEW","pointsContributed":1.5,"primaryMember":true,"inActive":true},
      {"fleetUserId":9007199254740993,"joinedOn":null,"role":"SECONDARY","permissions":["VIEW"],"primaryMember":false,"inActive":false},
      {"fleetUserId":"42","role":"SECONDARY","permissions":"","primaryMember":false}]`;
    const t = setup({
      config: basic,
      handler: () => json(`{"pagination":{"limit":100,"offset":0,"total":3},"data":${rows}}`),
    });
    expect(await collect(t.api.listMembers("9007199254740993"))).toEqual([
      {
        userId: "1234567890123456789",
        joinedOn: "2024-02-29",
        role: "PRIMARY",
        permissions: ["REDEEM", "VIEW"],
        primaryMember: true,
      },
      {
        userId: "9007199254740993",
        joinedOn: null,
        role: "SECONDARY",
        permissions: ["VIEW"],
        primaryMember: false,
      },
      { userId: "42", joinedOn: null, role: "SECONDARY", permissions: [], primaryMember: false },
    ]);
    expect(Object.fromEntries(t.calls[0]?.url.searchParams ?? [])).toEqual({
      source: "ALL",
      identifierName: "id",
      identifierValue: "9007199254740993",
      paginationDetails: "true",
      limit: "100",
      offset: "0",
    });
  });

  it("listMembers on a group that is gone throws CAPILLARY_GROUP_NOT_FOUND (never an empty list)", async () => {
    const t = setup({
      config: basic,
      handler: () => json(`{"warnings":[],"errors":[{"status":false,"code":1632,"message":"x"}]}`, 400),
    });
    expect(await errorOf(collect(t.api.listMembers("1")))).toMatchObject({
      code: "CAPILLARY_GROUP_NOT_FOUND",
      capillaryCodes: [1632],
    });
  });
});

describe("pagination", () => {
  const basic = { CAPILLARY_AUTH: "basic" as const };
  const row = (id: string) =>
    `{"fleetUserId":${id},"joinedOn":"2024-01-01","role":"SECONDARY","permissions":"VIEW","primaryMember":false}`;

  /** A /members server over a mutable list; `cap` limits rows per page below the requested limit. */
  function listServer(
    list: string[],
    opts: { cap?: number; total?: boolean; before?: (offset: number) => void } = {},
  ) {
    return (c: Call) => {
      const offset = Number(c.url.searchParams.get("offset"));
      const limit = Math.min(Number(c.url.searchParams.get("limit")), opts.cap ?? Infinity);
      opts.before?.(offset);
      const data = list
        .slice(offset, offset + limit)
        .map(row)
        .join(",");
      const pagination =
        opts.total === false
          ? ""
          : `"pagination":{"limit":${limit},"offset":${offset},"total":${list.length}},`;
      return json(`{${pagination}"data":[${data}]}`);
    };
  }
  const ids = (n: number, from = 1000) => Array.from({ length: n }, (_, i) => String(from + i));

  it("follows pages with offset += rows received until total (server caps the page below the limit)", async () => {
    const t = setup({
      config: { ...basic, CAPILLARY_PAGE_SIZE: 100 },
      handler: listServer(ids(95), { cap: 40 }),
    });
    const got = await collect(t.api.listMembers("1"));
    expect(got.map((m) => m.userId)).toEqual(ids(95));
    expect(t.calls.map((c) => c.url.searchParams.get("offset"))).toEqual(["0", "40", "80"]);
  });

  it("without pagination details, stops at the first empty page", async () => {
    const t = setup({
      config: { ...basic, CAPILLARY_PAGE_SIZE: 10 },
      handler: listServer(ids(25), { total: false }),
    });
    expect(await collect(t.api.listMembers("1"))).toHaveLength(25);
    expect(t.calls.map((c) => c.url.searchParams.get("offset"))).toEqual(["0", "10", "20", "25"]);
  });

  it("a member inserted before the page boundary between two pages is found by a second pass", async () => {
    const list = ids(25);
    let inserted = false;
    const before = (offset: number) => {
      if (offset === 10 && !inserted) {
        inserted = true;
        list.unshift("9999999999999999999");
      }
    };
    const t = setup({ config: { ...basic, CAPILLARY_PAGE_SIZE: 10 }, handler: listServer(list, { before }) });
    const got = (await collect(t.api.listMembers("1"))).map((m) => m.userId);
    expect(got).toHaveLength(26);
    expect(new Set(got)).toEqual(new Set(list));
    expect(t.calls.map((c) => c.url.searchParams.get("offset"))).toEqual(["0", "10", "20", "0", "10", "20"]);
  });

  it("a member removed between two pages (the list shifts back) does not hide its neighbour", async () => {
    const list = ids(25);
    let removed = false;
    const before = (offset: number) => {
      if (offset === 10 && !removed) {
        removed = true;
        list.splice(0, 1); // ids[10] moves to offset 9, already passed
      }
    };
    const t = setup({ config: { ...basic, CAPILLARY_PAGE_SIZE: 10 }, handler: listServer(list, { before }) });
    const got = (await collect(t.api.listMembers("1"))).map((m) => m.userId);
    expect(got).toContain("1010");
    expect(new Set(got)).toEqual(new Set(ids(25)));
  });

  it("a server that never ends is cut off: CAPILLARY_PAGINATION_RUNAWAY", async () => {
    const t = setup({
      config: { ...basic, CAPILLARY_PAGE_SIZE: 2 },
      handler: () => json(`{"data":[${row("1")},${row("2")}]}`), // ignores offset, no total
    });
    expect(await errorOf(collect(t.api.listMembers("1")))).toMatchObject({
      code: "CAPILLARY_PAGINATION_RUNAWAY",
    });
    expect(t.calls.length).toBeLessThan(10);
  });

  it("a list that changes on every pass ends with CAPILLARY_PAGINATION_UNSTABLE", async () => {
    const list = ids(5);
    let next = 5000;
    const t = setup({
      config: { ...basic, CAPILLARY_PAGE_SIZE: 2 },
      handler: listServer(list, { before: (o) => (o === 2 ? list.unshift(String(next++)) : undefined) }),
    });
    expect(await errorOf(collect(t.api.listMembers("1")))).toMatchObject({
      code: "CAPILLARY_PAGINATION_UNSTABLE",
    });
  });

  it("searchGroups: every page, ids exact, q passed through", async () => {
    const page = (offset: number) => {
      const all = [
        `{"groupId":9007199254740993,"groupName":"Acme","groupStatus":"ACTIVE","groupExternalId":"E1","primaryMemberId":1,"totalMembers":2}`,
        `{"groupId":12,"groupName":"acme 2","groupStatus":"INACTIVE","groupExternalId":null,"primaryMemberId":null,"totalMembers":0}`,
        `{"groupId":13,"groupName":"ACME 3","groupStatus":"ACTIVE","groupExternalId":"","totalMembers":1}`,
      ];
      return json(
        `{"pagination":{"limit":2,"offset":${offset},"total":3},"data":[${all.slice(offset, offset + 2).join(",")}]}`,
      );
    };
    const t = setup({
      config: { ...basic, CAPILLARY_PAGE_SIZE: 2 },
      handler: (c) => page(Number(c.url.searchParams.get("offset"))),
    });
    expect(await collect(t.api.searchGroups("acme & co"))).toEqual([
      { groupId: "9007199254740993", groupName: "Acme", groupExternalId: "E1" },
      { groupId: "12", groupName: "acme 2", groupExternalId: null },
      { groupId: "13", groupName: "ACME 3", groupExternalId: null },
    ]);
    expect(t.calls.map((c) => c.url.pathname)).toEqual(["/v2/userGroup2/search", "/v2/userGroup2/search"]);
    expect(t.calls[0]?.url.searchParams.get("q")).toBe("acme & co");
  });
});

describe("extendedFieldSearch", () => {
  const basic = { CAPILLARY_AUTH: "basic" as const };
  it("POSTs {extendedFields} with the paging in the query, every page, ids exact", async () => {
    const rows = [
      `{"groupId":9007199254740993,"groupName":"A","groupStatus":"ACTIVE","groupExternalId":"E1"}`,
      `{"groupId":12,"groupName":"B","groupStatus":"ACTIVE","groupExternalId":null}`,
      `{"groupId":13,"groupName":"C","groupStatus":"INACTIVE"}`,
    ];
    const t = setup({
      config: { ...basic, CAPILLARY_PAGE_SIZE: 2 },
      handler: (c) => {
        const offset = Number(c.url.searchParams.get("offset"));
        return json(
          `{"pagination":{"limit":2,"offset":${offset},"total":3},"data":[${rows.slice(offset, offset + 2).join(",")}]}`,
        );
      },
    });
    expect(await collect(t.api.extendedFieldSearch({ region: "north", fleet_type: "truck" }))).toEqual([
      { groupId: "9007199254740993", groupName: "A", groupExternalId: "E1" },
      { groupId: "12", groupName: "B", groupExternalId: null },
      { groupId: "13", groupName: "C", groupExternalId: null },
    ]);
    expect(t.calls.map((c) => [c.method, c.url.pathname, c.url.searchParams.get("offset")])).toEqual([
      ["POST", "/v2/userGroup2/extendedFieldSearch", "0"],
      ["POST", "/v2/userGroup2/extendedFieldSearch", "2"],
    ]);
    for (const c of t.calls) {
      expect(JSON.parse(c.body ?? "")).toEqual({ extendedFields: { region: "north", fleet_type: "truck" } });
      expect(c.headers.get("content-type")).toBe("application/json");
    }
  });

  it("a 503 is retried and an error body is a CapillaryApiError naming POST", async () => {
    let n = 0;
    const t = setup({
      config: basic,
      handler: () =>
        ++n === 1
          ? json("", 503)
          : json(`{"warnings":[],"errors":[{"status":false,"code":400,"message":"bad"}]}`, 400),
    });
    const e = await errorOf(collect(t.api.extendedFieldSearch({ region: "x" })));
    expect(e).toMatchObject({ code: "CAPILLARY_HTTP_400", status: 400, capillaryCodes: [400] });
    expect(e.message).toContain("POST /v2/userGroup2/extendedFieldSearch");
    expect(t.calls).toHaveLength(2);
  });
});

describe("secrets", () => {
  it("no credential or token appears in any log entry or error message", async () => {
    const TOKEN = "tok-SUPERSECRET-123";
    const secrets = [
      SECRET,
      KEY,
      PASSWORD_MD5,
      TOKEN,
      Buffer.from(`${USER}:${PASSWORD_MD5}`).toString("base64"),
    ];
    const texts: string[] = [];
    const scenarios: { config: Partial<CapillaryConfig>; handler: Handler }[] = [
      // oauth: token ok, then 401 twice, then every kind of failure
      { config: {}, handler: (c) => (isToken(c) ? tokenReply(TOKEN) : json("{}", 401)) },
      {
        config: { CAPILLARY_MAX_RETRIES: 2 },
        handler: (c) => (isToken(c) ? tokenReply(TOKEN) : json("", 503)),
      },
      { config: { CAPILLARY_MAX_RETRIES: 1 }, handler: (c) => (isToken(c) ? json("", 500) : json(GROUP())) },
      {
        config: {},
        handler: (c) => (isToken(c) ? json(`{"data":{"accessToken":"${TOKEN}"}}`) : json(GROUP())),
      },
      { config: { CAPILLARY_AUTH: "basic" }, handler: () => json("{}", 401) },
      { config: { CAPILLARY_AUTH: "basic", CAPILLARY_MAX_RETRIES: 1 }, handler: () => json("{}", 429) },
      { config: { CAPILLARY_AUTH: "basic" }, handler: () => json(`{"id":"x"}`) },
    ];
    for (const s of scenarios) {
      const t = setup(s);
      const e = await errorOf(t.api.getGroup({ id: "1" }));
      texts.push(e.message, String(e.stack), JSON.stringify(e), ...t.logs.map((l) => JSON.stringify(l)));
    }
    expect(texts.length).toBeGreaterThan(scenarios.length * 3);
    for (const text of texts) for (const secret of secrets) expect(text).not.toContain(secret);
  });
});
