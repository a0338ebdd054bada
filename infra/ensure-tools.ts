/**
 * `npm test` set-up (npm runs it as `pretest`): the system tools the integration tests need, installed
 * from Debian's packages where they are missing and this user may (root with apt-get), else a clear
 * message on how to install them. Java runs DynamoDB Local; Chromium opens the HTML report.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

interface Tool {
  name: string;
  present: () => boolean;
  debianPackage: string;
}

const TOOLS: Tool[] = [
  {
    name: "Java 17+ (DynamoDB Local)",
    present: () => spawnSync("java", ["-version"]).status === 0,
    debianPackage: "openjdk-17-jre-headless",
  },
  {
    name: "Chromium (HTML report test)",
    present: () => existsSync("/usr/bin/chromium"),
    debianPackage: "chromium",
  },
];

const missing = TOOLS.filter((t) => !t.present());
if (missing.length > 0) {
  const packages = missing.map((t) => t.debianPackage);
  const canApt = process.getuid?.() === 0 && spawnSync("apt-get", ["--version"]).status === 0;
  if (!canApt) {
    console.error(
      `missing: ${missing.map((t) => t.name).join(", ")}.\nInstall with: sudo apt-get update && sudo apt-get install -y ${packages.join(" ")}`,
    );
    process.exit(1);
  }
  console.log(`installing ${packages.join(", ")} from Debian (first run only)`);
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
  execFileSync("apt-get", ["install", "-y", "-qq", ...packages], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  const still = missing.filter((t) => !t.present());
  if (still.length > 0) {
    console.error(`still missing after install: ${still.map((t) => t.name).join(", ")}`);
    process.exit(1);
  }
}
