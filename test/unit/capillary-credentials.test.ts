import { GetParametersCommand, SSMClient } from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { CapillaryApiError, type Credentials, createCapillaryApi } from "../../lib/adapters/capillary-api.ts";
import {
  CredentialsError,
  capillaryCredentialsProvider,
  credentialsSourceOf,
} from "../../lib/adapters/capillary-credentials.ts";
import { type CapillaryConfig, capillarySchema, loadConfig } from "../../lib/config.ts";

/** Credentials from SSM (SDK mocked at the client boundary), and the client's use of them. */

const ssm = mockClient(SSMClient);
const SECRET = "S3CR3T-value-never-logged";
const PREFIX = "/glr/prod/capillary";

function config(over: Record<string, string> = {}): CapillaryConfig {
  return loadConfig({ CAPILLARY_BASE_URL: "https://eu.api.capillarytech.com", ...over }, capillarySchema);
}

const clients = {
  ssm: () => new SSMClient({ region: "eu-west-1" }),
};

beforeEach(() => {
  ssm.reset();
});

describe("config", () => {
  it("accepts an SSM prefix instead of credentials in the environment", () => {
    expect(credentialsSourceOf(config({ CAPILLARY_CREDENTIALS_SSM_PREFIX: PREFIX }))).toBe("ssm");
    expect(credentialsSourceOf(config({ CAPILLARY_OAUTH_KEY: "k", CAPILLARY_OAUTH_SECRET: "s" }))).toBe(
      "env",
    );
    expect(() => config()).toThrow(/CAPILLARY_OAUTH_KEY/);
    expect(() => config({ CAPILLARY_CREDENTIALS_SSM_PREFIX: "no-slash/" })).toThrow(
      /CAPILLARY_CREDENTIALS_SSM_PREFIX/,
    );
  });
});

describe("SSM Parameter Store", () => {
  it("reads <prefix>/oauth-key and <prefix>/oauth-secret with decryption in one call", async () => {
    ssm.on(GetParametersCommand).resolves({
      Parameters: [
        { Name: `${PREFIX}/oauth-secret`, Value: SECRET },
        { Name: `${PREFIX}/oauth-key`, Value: "the-key" },
      ],
    });
    const get = capillaryCredentialsProvider(config({ CAPILLARY_CREDENTIALS_SSM_PREFIX: PREFIX }), clients);
    expect(await get()).toEqual({ kind: "oauth", key: "the-key", secret: SECRET });
    const calls = ssm.commandCalls(GetParametersCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.args[0].input).toEqual({
      Names: [`${PREFIX}/oauth-key`, `${PREFIX}/oauth-secret`],
      WithDecryption: true,
    });
  });

  it("basic auth reads <prefix>/username and <prefix>/password", async () => {
    ssm.on(GetParametersCommand).resolves({
      Parameters: [
        { Name: `${PREFIX}/username`, Value: "till.one" },
        { Name: `${PREFIX}/password`, Value: SECRET },
      ],
    });
    const get = capillaryCredentialsProvider(
      config({ CAPILLARY_AUTH: "basic", CAPILLARY_CREDENTIALS_SSM_PREFIX: PREFIX }),
      clients,
    );
    expect(await get()).toEqual({ kind: "basic", username: "till.one", password: SECRET });
  });

  it("a missing parameter or an AWS error names the parameter or error, never a value", async () => {
    ssm.on(GetParametersCommand).resolves({
      Parameters: [{ Name: `${PREFIX}/oauth-key`, Value: SECRET }],
      InvalidParameters: [`${PREFIX}/oauth-secret`],
    });
    const get = capillaryCredentialsProvider(config({ CAPILLARY_CREDENTIALS_SSM_PREFIX: PREFIX }), clients);
    const e = await get().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CredentialsError);
    expect((e as Error).message).toContain(`${PREFIX}/oauth-secret`);
    expect((e as Error).message).not.toContain(SECRET);

    ssm.reset();
    ssm
      .on(GetParametersCommand)
      .rejects(Object.assign(new Error(`denied for ${SECRET}`), { name: "AccessDeniedException" }));
    const e2 = await get().catch((x: unknown) => x);
    expect((e2 as Error).message).toContain("AccessDeniedException");
    expect((e2 as Error).message).not.toContain(SECRET);
  });

  it("calls within the refresh interval share one fetch; later calls (auth failure) fetch again", async () => {
    let now = 1_000_000;
    let n = 0;
    ssm.on(GetParametersCommand).callsFake(() => {
      n++;
      return {
        Parameters: [
          { Name: `${PREFIX}/oauth-key`, Value: `key-${n}` },
          { Name: `${PREFIX}/oauth-secret`, Value: SECRET },
        ],
      };
    });
    const get = capillaryCredentialsProvider(config({ CAPILLARY_CREDENTIALS_SSM_PREFIX: PREFIX }), {
      ...clients,
      nowMs: () => now,
      minRefreshMs: 30_000,
    });
    await Promise.all([get(), get()]);
    now += 10_000;
    expect(await get()).toMatchObject({ key: "key-1" });
    now += 30_000;
    expect(await get()).toMatchObject({ key: "key-2" });
    expect(ssm.commandCalls(GetParametersCommand)).toHaveLength(2);
  });

  it("a failed fetch is not cached", async () => {
    ssm
      .on(GetParametersCommand)
      .rejectsOnce(Object.assign(new Error("x"), { name: "ThrottlingException" }))
      .resolves({
        Parameters: [
          { Name: `${PREFIX}/oauth-key`, Value: "k" },
          { Name: `${PREFIX}/oauth-secret`, Value: SECRET },
        ],
      });
    const get = capillaryCredentialsProvider(config({ CAPILLARY_CREDENTIALS_SSM_PREFIX: PREFIX }), clients);
    await expect(get()).rejects.toThrow(/ThrottlingException/);
    expect(await get()).toMatchObject({ key: "k" });
  });
});

describe("environment", () => {
  it("uses CAPILLARY_OAUTH_* without any AWS call", async () => {
    const get = capillaryCredentialsProvider(
      config({ CAPILLARY_OAUTH_KEY: "k", CAPILLARY_OAUTH_SECRET: SECRET }),
      clients,
    );
    expect(await get()).toEqual({ kind: "oauth", key: "k", secret: SECRET });
    expect(ssm.calls()).toHaveLength(0);
  });
});

describe("the client with rotating credentials", () => {
  const json = (body: string, status = 200) =>
    new Response(body, { status, headers: { "content-type": "application/json" } });
  const GROUP = `{"id":7,"externalId":null,"groupName":"G","groupStatus":"ACTIVE","fleetGroupUsers":[],"pointsSummaries":[],"warnings":[]}`;

  function client(credentials: () => Promise<Credentials>, validSecret: { current: string }) {
    const paths: string[] = [];
    const logs: Record<string, unknown>[] = [];
    const api = createCapillaryApi(
      { ...config({ CAPILLARY_CREDENTIALS_SSM_PREFIX: PREFIX }), CAPILLARY_RATE_PER_SECOND: 1000 },
      {
        credentials,
        log: (e) => logs.push(e),
        sleep: async () => {},
        fetch: async (input, init) => {
          const url = new URL(String(input));
          paths.push(url.pathname);
          if (url.pathname === "/v3/oauth/token/generate") {
            const body = JSON.parse(String(init?.body)) as { secret: string };
            return body.secret === validSecret.current
              ? json(`{"data":{"accessToken":"tok-${body.secret}","ttlSeconds":3600}}`)
              : json(`{"errors":[{"code":401}]}`, 401);
          }
          const tok = new Headers(init?.headers).get("x-cap-api-oauth-token");
          return tok === `tok-${validSecret.current}` ? json(GROUP) : json(`{"errors":[{"code":401}]}`, 401);
        },
      },
    );
    return { api, paths, logs };
  }

  it("fetches credentials once per process; after a rotation, a refused token re-reads them once", async () => {
    const valid = { current: "old" };
    let stored = "old";
    let reads = 0;
    const { api, paths, logs } = client(async () => {
      reads++;
      return { kind: "oauth", key: "k", secret: stored };
    }, valid);
    await api.getGroup({ id: "7" });
    await api.getGroup({ id: "7" });
    expect(reads).toBe(1);

    // The secret is rotated in SSM and the old token revoked: 401 -> token refused -> re-read -> works.
    valid.current = "new";
    stored = "new";
    expect(await api.getGroup({ id: "7" })).toMatchObject({ id: "7" });
    expect(reads).toBe(2);
    expect(paths.filter((p) => p === "/v3/oauth/token/generate")).toHaveLength(3);
    expect(logs.some((l) => l.event === "capillary_credentials_reloaded")).toBe(true);
    expect(JSON.stringify(logs)).not.toContain("new");
  });

  it("a wrong secret that stays wrong is CAPILLARY_AUTH after one re-read, not a loop", async () => {
    let reads = 0;
    const { api, paths } = client(
      async () => {
        reads++;
        return { kind: "oauth", key: "k", secret: `wrong-${reads}` };
      },
      { current: "right" },
    );
    const e = await api.getGroup({ id: "7" }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CapillaryApiError);
    expect(e).toMatchObject({ code: "CAPILLARY_AUTH" });
    expect(reads).toBe(2);
    expect(paths).toEqual(["/v3/oauth/token/generate", "/v3/oauth/token/generate"]);
  });

  it("a credentials source failure is CAPILLARY_AUTH naming the parameter, not its value", async () => {
    const { api } = client(
      async () => {
        throw new CredentialsError(`SSM parameter ${PREFIX}/oauth-key is missing or empty`);
      },
      { current: "x" },
    );
    const e = (await api.getGroup({ id: "7" }).catch((x: unknown) => x)) as CapillaryApiError;
    expect(e.code).toBe("CAPILLARY_AUTH");
    expect(e.message).toContain(`${PREFIX}/oauth-key`);
  });
});
