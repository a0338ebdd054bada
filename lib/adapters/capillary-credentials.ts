import { GetParametersCommand, type GetParametersCommandOutput, type SSMClient } from "@aws-sdk/client-ssm";
import type { CapillaryConfig } from "../config.ts";
import type { Credentials } from "./capillary-api.ts";

/**
 * Where the Capillary client gets its credentials (passed as `deps.credentials` to createCapillaryApi):
 *
 * - CAPILLARY_CREDENTIALS_SSM_PREFIX: SSM parameters `<prefix>/oauth-key` and `<prefix>/oauth-secret`
 *   (CAPILLARY_AUTH=oauth) or `<prefix>/username` and `<prefix>/password` (basic), read with decryption
 *   (SecureString) in one GetParameters call.
 * - Otherwise: the CAPILLARY_OAUTH_* / CAPILLARY_USERNAME / CAPILLARY_PASSWORD variables (local runs).
 *
 * The client caches what this returns for the life of the process (one fetch per cold start) and calls it
 * again after an authentication failure (a rotated secret). Calls within `minRefreshMs` of the last
 * fetch share its result, so a wrong secret cannot turn every failing request into an AWS call. Errors
 * name the source and the parameter, never a value.
 */

export class CredentialsError extends Error {
  readonly code = "CAPILLARY_CREDENTIALS";
  constructor(message: string) {
    super(message);
    this.name = "CredentialsError";
  }
}

export interface CredentialsSourceDeps {
  ssm?: () => SSMClient;
  nowMs?: () => number;
  /** Default 30 s. */
  minRefreshMs?: number;
}

export type CredentialsSource = "ssm" | "env";

export function credentialsSourceOf(config: CapillaryConfig): CredentialsSource {
  return config.CAPILLARY_CREDENTIALS_SSM_PREFIX ? "ssm" : "env";
}

export function capillaryCredentialsProvider(
  config: CapillaryConfig,
  deps: CredentialsSourceDeps = {},
): () => Promise<Credentials> {
  const source = credentialsSourceOf(config);
  const nowMs = deps.nowMs ?? Date.now;
  const minRefreshMs = deps.minRefreshMs ?? 30_000;
  const oauth = config.CAPILLARY_AUTH === "oauth";

  const fromEnv = async (): Promise<Credentials> => {
    if (oauth) {
      const { CAPILLARY_OAUTH_KEY: key, CAPILLARY_OAUTH_SECRET: secret } = config;
      if (!key || !secret) throw new CredentialsError("CAPILLARY_OAUTH_KEY / CAPILLARY_OAUTH_SECRET not set");
      return { kind: "oauth", key, secret };
    }
    const { CAPILLARY_USERNAME: username, CAPILLARY_PASSWORD: password } = config;
    if (!username || !password) throw new CredentialsError("CAPILLARY_USERNAME / CAPILLARY_PASSWORD not set");
    return { kind: "basic", username, password };
  };

  const fromSsm = async (): Promise<Credentials> => {
    const prefix = config.CAPILLARY_CREDENTIALS_SSM_PREFIX ?? "";
    const [a, b] = oauth ? ["oauth-key", "oauth-secret"] : ["username", "password"];
    const names = [`${prefix}/${a}`, `${prefix}/${b}`];
    if (!deps.ssm) throw new CredentialsError("no SSM client configured");
    let out: GetParametersCommandOutput;
    try {
      out = await deps.ssm().send(new GetParametersCommand({ Names: names, WithDecryption: true }));
    } catch (e) {
      throw new CredentialsError(`SSM GetParameters failed (${errorName(e)})`);
    }
    const value = (name: string) => {
      const v = out.Parameters?.find((p) => p.Name === name)?.Value;
      if (!v) throw new CredentialsError(`SSM parameter ${name} is missing or empty`);
      return v;
    };
    const [x, y] = [value(names[0] as string), value(names[1] as string)];
    return oauth ? { kind: "oauth", key: x, secret: y } : { kind: "basic", username: x, password: y };
  };

  const fetchOnce = source === "ssm" ? fromSsm : fromEnv;
  let last: { at: number; value: Promise<Credentials> } | null = null;
  return () => {
    const t = nowMs();
    if (last !== null && t - last.at < minRefreshMs) return last.value;
    const value = fetchOnce();
    const entry = { at: t, value };
    last = entry;
    // A failed fetch is not reused: the next call tries again.
    value.catch(() => {
      if (last === entry) last = null;
    });
    return value;
  };
}

/** The AWS error's name (AccessDeniedException, ParameterNotFound...), never its message. */
function errorName(e: unknown): string {
  const name = e instanceof Error ? e.name : "";
  return /^[A-Za-z0-9_.]{1,80}$/.test(name) ? name : "error";
}
