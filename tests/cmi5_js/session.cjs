// One cmi5 AU session driven by the @xapi/cmi5 library (npm), as content launched by an LMS runs
// it: the launch URL's parameters, the fetch URL's token, LMS.LaunchData, then the statements the
// steps in STEPS ask for (comma-separated: progress, pass, fail, complete, terminate). Prints what
// the library saw as JSON; exits 1 with the LRS's answer when a step is refused.
const path = require("path");
// the library is built for browsers: its HTTP client needs XMLHttpRequest, which xhr2 provides
global.XMLHttpRequest = require(path.join(process.env.NODE_MODULES, "xhr2"));
const Cmi5 = require(path.join(process.env.NODE_MODULES, "@xapi/cmi5/dist/Cmi5.umd.js"));

async function main() {
  const query = new URL(process.env.LAUNCH_URL).searchParams;
  const cmi5 = new Cmi5({
    endpoint: query.get("endpoint"),
    fetch: query.get("fetch"),
    actor: JSON.parse(query.get("actor")),
    registration: query.get("registration"),
    activityId: query.get("activityId"),
  });
  const out = { steps: [] };
  await cmi5.initialize();
  out.steps.push("initialize");
  out.launchData = cmi5.getLaunchData();
  out.learnerPreferences = cmi5.getLearnerPreferences();
  for (const step of (process.env.STEPS || "").split(",").filter(Boolean)) {
    if (step === "progress") await cmi5.progress(50);
    else if (step === "pass") await cmi5.pass({ scaled: Number(process.env.SCORE || "1") });
    else if (step === "fail") await cmi5.fail({ scaled: Number(process.env.SCORE || "0") });
    else if (step === "complete") await cmi5.complete();
    else if (step === "terminate") await cmi5.terminate();
    else throw new Error(`unknown step ${step}`);
    out.steps.push(step);
  }
  console.log(JSON.stringify(out));
}

main().catch((error) => {
  const answer = error.response ? { status: error.response.status, data: error.response.data } : null;
  console.error(JSON.stringify({ error: String(error), answer }));
  process.exit(1);
});
