// Mints a Banyan viewer token with Node's standard library only.
// Usage: node mint.mjs SECRET_BASE64URL STREAM TTL_SECONDS
import { createHmac } from "node:crypto";

export function mintViewerToken(secret, stream, ttlSeconds) {
  const expiry = Math.floor(Date.now() / 1000) + ttlSeconds;
  const payload = `${stream}:${expiry}`;
  const sig = createHmac("sha256", secret).update(payload).digest("base64url");
  return Buffer.from(payload).toString("base64url") + "." + sig;
}

const [secret, stream, ttl] = process.argv.slice(2);
if (!secret || !stream || !(Number(ttl) > 0)) {
  console.error("usage: node mint.mjs SECRET_BASE64URL STREAM TTL_SECONDS");
  process.exit(2);
}
console.log(mintViewerToken(Buffer.from(secret, "base64url"), stream, Number(ttl)));
