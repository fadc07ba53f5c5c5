// A cmi5-style content session driven by @xapi/xapi (the npm package, under Node.js), for
// tests/test_xapi_js_client.py: About, statements (one with a binary attachment from a Buffer,
// one with an attachment read as a "binary" string), a state document, a query, a voiding.
// Configuration from the environment; prints one JSON object with what the library got back.
"use strict";
const crypto = require("crypto");
const XAPI = require("@xapi/xapi");

const env = process.env;
const xapi = new XAPI({
  endpoint: env.XAPI_ENDPOINT,
  auth: XAPI.toBasicAuth(env.XAPI_KEY, env.XAPI_SECRET),
  version: env.XAPI_VERSION || "1.0.3",
});
const actor = { objectType: "Agent", name: "Node Learner", mbox: `mailto:${env.RUN_ID}@example.com` };
const activity = {
  objectType: "Activity",
  id: `https://lms.example/courses/node/${env.RUN_ID}`,
  definition: { name: { "en-US": "A Node.js course" }, type: "http://adlnet.gov/expapi/activities/course" },
};
const registration = env.REGISTRATION;
const verb = (name) => ({ id: `http://adlnet.gov/expapi/verbs/${name}`, display: { "en-US": name } });
const at = (n) => new Date(Date.UTC(2026, 11, 7, 9, 0, n)).toISOString();
const statement = (name, n, extra) => ({
  actor, verb: verb(name), object: activity, timestamp: at(n),
  context: { registration, extensions: { "https://w3id.org/xapi/cmi5/context/extensions/sessionid": env.RUN_ID } },
  ...extra,
});
const sha256 = (data) => crypto.createHash("sha256").update(data).digest("hex");

async function main() {
  const out = { ids: {} };
  out.about = (await xapi.getAbout()).data;
  out.ids.launched = (await xapi.sendStatement({ statement: statement("launched", 0) })).data[0];
  out.ids.initialized = (await xapi.sendStatement({ statement: statement("initialized", 1) })).data[0];

  const state = { location: "page-3", visited: [1, 2, 3] };
  await xapi.setState({ agent: actor, activityId: activity.id, stateId: "bookmark", registration, state });
  out.state = (await xapi.getState({ agent: actor, activityId: activity.id, stateId: "bookmark", registration })).data;

  // a binary attachment from a Buffer: sent as multipart/mixed declared application/octet-stream
  const certificate = Buffer.from(env.ATTACHMENT_HEX, "hex");
  const completed = statement("completed", 2, {
    result: { completion: true, success: true, score: { scaled: 0.9 }, duration: "PT12M" },
    attachments: [{
      usageType: XAPI.AttachmentUsages.CERTIFICATE_OF_COMPLETION, display: { "en-US": "certificate" },
      contentType: "image/png", length: certificate.length, sha2: sha256(certificate),
    }],
  });
  out.ids.completed = (await xapi.sendStatement({ statement: completed, attachments: [certificate] })).data[0];

  // an attachment read as a "binary" (Latin-1) string, as browser code reading a file often does
  const binary = Buffer.from(env.NOTES_HEX, "hex");
  const notes = binary.toString("latin1");
  const progressed = statement("progressed", 3, {
    attachments: [{
      usageType: XAPI.AttachmentUsages.SUPPORTING_MEDIA, display: { "en-US": "notes" },
      contentType: "application/octet-stream", length: binary.length, sha2: sha256(binary),
    }],
  });
  out.ids.progressed = (await xapi.sendStatements({ statements: [progressed], attachments: [notes] })).data[0];

  out.ids.terminated = (await xapi.sendStatement({ statement: statement("terminated", 4) })).data[0];
  out.ids.voiding = (await xapi.voidStatement({ actor, statementId: out.ids.progressed })).data[0];

  const found = (await xapi.getStatements({ registration, ascending: true, limit: 50 })).data;
  out.query = found.statements.map((s) => s.id);
  out.voided = (await xapi.getVoidedStatement({ voidedStatementId: out.ids.progressed })).data.id;
  out.completed = (await xapi.getStatement({ statementId: out.ids.completed })).data;

  // the library's known limit: two attachments in one request make a malformed body (no CRLF
  // before the second delimiter), which the LRS refuses with a 400 naming the failing hash
  const first = Buffer.from(`first ${env.RUN_ID}`), second = Buffer.from(`second ${env.RUN_ID}`);
  const described = (data) => ({
    usageType: XAPI.AttachmentUsages.SUPPORTING_MEDIA, display: { "en-US": "file" },
    contentType: "text/plain", length: data.length, sha2: sha256(data),
  });
  const two = statement("experienced", 5, { id: env.TWO_ID, attachments: [described(first), described(second)] });
  try {
    await xapi.sendStatement({ statement: two, attachments: [first, second] });
    out.two = { status: 200 };
  } catch (err) {
    out.two = { status: err.response ? err.response.status : null, data: err.response ? err.response.data : String(err) };
  }
  return out;
}

main().then(
  (out) => process.stdout.write(JSON.stringify(out)),
  (err) => {
    const response = err.response ? ` HTTP ${err.response.status}: ${JSON.stringify(err.response.data)}` : "";
    process.stderr.write(`${err.stack || err}${response}\n`);
    process.exit(1);
  },
);
