// Verify a callback from the campaign order processor (docs/integrator-guide.md, "Callbacks").
//
// Node's standard library only (crypto). Copy `verify` into your receiver and call it with
// the raw body as a Buffer (read it before any JSON parsing: express.raw(), not
// express.json()) and the X-Signature header. It answers false, never throws, for a header
// that is missing, malformed, stale or signed with another secret.
//
// From a shell, to check a capture (exit status 0: valid, 1: refused):
//
//     node verify_webhook.js SECRET BODY_FILE 't=1764430000,v1=5f2b...'
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");

const TOLERANCE_SECONDS = 300; // refuse a timestamp further than this from our clock: a replay

function verify(secret, body, header, tolerance = TOLERANCE_SECONDS, now = Date.now() / 1000) {
  if (typeof header !== "string" || header === "") return false;
  const stamps = [];
  const given = [];
  for (const part of header.split(",")) {
    const at = part.indexOf("=");
    if (at < 0) return false;
    const key = part.slice(0, at).trim();
    const value = part.slice(at + 1);
    if (key === "t") stamps.push(value);
    else if (key === "v1") given.push(value);
  }
  // Exactly one t, made of digits only, and at least one v1.
  if (stamps.length !== 1 || !/^[0-9]{1,15}$/.test(stamps[0]) || given.length === 0) {
    return false;
  }
  const stamp = Number(stamps[0]);
  if (Math.abs(now - stamp) > tolerance) return false;
  const mac = crypto
    .createHmac("sha256", secret)
    .update(`${stamp}.`)
    .update(body)
    .digest();
  // Every entry compared in constant time (one per valid secret while it is rotated); an
  // entry that is not 64 hex digits cannot match, and timingSafeEqual needs equal lengths.
  let ok = false;
  for (const value of given) {
    if (!/^[0-9a-f]{64}$/.test(value)) continue;
    if (crypto.timingSafeEqual(mac, Buffer.from(value, "hex"))) ok = true;
  }
  return ok;
}

module.exports = { verify };

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args.length !== 3) {
    process.stderr.write("usage: node verify_webhook.js SECRET BODY_FILE X_SIGNATURE\n");
    process.exit(2);
  }
  const [secret, bodyFile, header] = args;
  const ok = verify(secret, fs.readFileSync(bodyFile), header);
  process.stdout.write(ok ? "valid\n" : "refused\n");
  process.exit(ok ? 0 : 1);
}
