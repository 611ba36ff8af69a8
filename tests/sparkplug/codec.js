// Eclipse Tahu's Sparkplug B codec as a line filter for tests/sparkplug_test.py:
//   "D <base64 payload>"  -> one line of JSON, the decoded payload
//   "E <json payload>"    -> one line, the base64 of the encoded payload
// 64-bit integers (Long) come out as numbers. A line that fails gives
// {"error": "..."} so the test sees why.
"use strict";
const readline = require("readline");
const sparkplug = require("sparkplug-payload").get("spBv1.0");

function plain(value) {
  if (value && typeof value === "object" && typeof value.toNumber === "function") {
    return value.toNumber();
  }
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object" && !(value instanceof Uint8Array)) {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out;
  }
  return value;
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  try {
    const rest = line.slice(2);
    if (line.startsWith("D ")) {
      const payload = sparkplug.decodePayload(new Uint8Array(Buffer.from(rest, "base64")));
      process.stdout.write(JSON.stringify(plain(payload)) + "\n");
    } else if (line.startsWith("E ")) {
      const bytes = sparkplug.encodePayload(JSON.parse(rest));
      process.stdout.write(Buffer.from(bytes).toString("base64") + "\n");
    } else {
      throw new Error("a line starts with 'D ' or 'E '");
    }
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: String(e) }) + "\n");
  }
});
