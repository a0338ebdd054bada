import { describe, expect, it } from "vitest";
import { ConfigError, ingestSchema, loadConfig } from "../../lib/config.ts";
import { createRuntime } from "../../lib/runtime.ts";

const env = {
  EXPORTS_BUCKET: "exp-bucket",
  REPORTS_BUCKET: "rep-bucket",
  TABLE_NAME: "table",
  AWS_ACCESS_KEY_ID: "x",
  AWS_SECRET_ACCESS_KEY: "y",
};

describe("NUMBER_LOCALE", () => {
  it("defaults to none: grouping separators are rejected", () => {
    expect(loadConfig({}, ingestSchema).NUMBER_LOCALE).toBe("none");
    expect(createRuntime(env).ingest.settings.numberLocale).toBeUndefined();
  });

  it.each([
    ["en", { group: ",", decimal: "." }],
    ["de", { group: ".", decimal: "," }],
  ])("%s reaches the ingest settings", (locale, want) => {
    expect(createRuntime({ ...env, NUMBER_LOCALE: locale }).ingest.settings.numberLocale).toEqual(want);
  });

  it("names the variable when its value is unknown", () => {
    expect(() => loadConfig({ NUMBER_LOCALE: "fr" }, ingestSchema)).toThrow(ConfigError);
    expect(() => loadConfig({ NUMBER_LOCALE: "fr" }, ingestSchema)).toThrow(/NUMBER_LOCALE/);
  });
});
