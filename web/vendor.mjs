// Vendors the dashboard's pinned npm packages (web/vendor.json) into
// web/static/vendor/: `npm pack` fetches each tarball, its sha512 must match
// the pinned integrity, and only the listed files (the licence among them)
// are copied. Run by `make vendor`; needs node and npm, nothing else.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, mkdirSync, copyFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, basename } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const spec = JSON.parse(readFileSync(join(here, "vendor.json"), "utf8"));
const out = join(here, "static", "vendor");
const tmp = mkdtempSync(join(tmpdir(), "banyan-vendor-"));
try {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const notice = ["Third-party files vendored by `make vendor` from web/vendor.json.", ""];
  for (const p of spec.packages) {
    const ref = `${p.name}@${p.version}`;
    const res = JSON.parse(execFileSync("npm", ["pack", ref, "--json", "--pack-destination", tmp], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }));
    const tgz = join(tmp, res[0].filename);
    const sum = "sha512-" + createHash("sha512").update(readFileSync(tgz)).digest("base64");
    if (sum !== p.integrity) {
      throw new Error(`${ref}: tarball sha512 ${sum} does not match the pinned ${p.integrity}`);
    }
    const dir = join(tmp, p.name);
    mkdirSync(dir);
    execFileSync("tar", ["-xzf", tgz, "-C", dir]);
    const dst = join(out, p.name);
    mkdirSync(dst, { recursive: true });
    for (const f of p.files) {
      copyFileSync(join(dir, "package", f), join(dst, basename(f)));
    }
    notice.push(`${p.name} ${p.version} (${p.license}) ${p.integrity}: ${p.files.map((f) => basename(f)).join(", ")}`);
    console.error(`vendored ${ref} -> web/static/vendor/${p.name}/`);
  }
  writeFileSync(join(out, "VENDORED.txt"), notice.join("\n") + "\n");
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
