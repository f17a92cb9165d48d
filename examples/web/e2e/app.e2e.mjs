// Drives the built app in headless Chromium against a running gateway: sign up, log in, a
// refresh after the access token is refused, an upload followed to PROCESSED, a task's log line
// and SUCCEEDED, a workflow's steps. Prints "ok - <step>" per step; exits 1 on the first failure.
//
// APP_URL    where the app is served (its /graphql must reach the gateway), required
// IMAGE      the image of the task and workflow steps (default dockyard/busybox:test)
// CHROMIUM   the browser to drive (default /usr/bin/chromium; nothing is downloaded)
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

const APP_URL = process.env.APP_URL;
const IMAGE = process.env.IMAGE || "dockyard/busybox:test";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 30_000;

if (!APP_URL) throw new Error("APP_URL is required");
if (!existsSync(CHROMIUM)) {
  console.error(`not ok - no Chromium at ${CHROMIUM}: install the Debian package chromium`);
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Root in a container has no user namespaces for Chromium's sandbox.
  args: ["--no-sandbox"],
});
const context = await browser.newContext();
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);
const browserLog = [];
page.on("console", (message) => browserLog.push(`[console.${message.type()}] ${message.text()}`));
page.on("pageerror", (error) => browserLog.push(`[pageerror] ${error.message}`));
let openedSockets = 0;
page.on("websocket", () => {
  openedSockets += 1;
});

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
  } catch (error) {
    console.error(`not ok - ${name}: ${error.message}`);
    console.error(browserLog.join("\n"));
    console.error((await page.locator("body").innerText().catch(() => "")).slice(0, 4000));
    await browser.close();
    process.exit(1);
  }
  console.log(`ok - ${name} (${Date.now() - started} ms)`);
}

/** Wait until the element's text matches `pattern`; the last text seen is in the error. */
async function waitForText(testId, pattern) {
  const locator = page.getByTestId(testId);
  const deadline = Date.now() + TIMEOUT;
  let text = "";
  while (Date.now() < deadline) {
    text = (await locator.textContent({ timeout: TIMEOUT }).catch(() => "")) ?? "";
    if (pattern.test(text)) return text;
    await page.waitForTimeout(100);
  }
  throw new Error(`${testId} never matched ${pattern}; last: ${JSON.stringify(text)}`);
}

function storedSession() {
  return page.evaluate(() => JSON.parse(localStorage.getItem("dockyard.session")));
}

const email = `web-${randomUUID().slice(0, 12)}@example.com`;
const password = "correct horse battery";

await step("sign up", async () => {
  await page.goto(APP_URL);
  await page.getByLabel("Email").fill("not-an-email");
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Sign up" }).click();
  // BAD_USER_INPUT names each field.
  await page.getByRole("alert").filter({ hasText: "password" }).waitFor();
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign up" }).click();
  await waitForText("me", new RegExp(`^${email}$`));
});

await step("log out and log in", async () => {
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await waitForText("me", new RegExp(`^${email}$`));
});

await step("refresh the session when the access token is refused", async () => {
  const before = await storedSession();
  await page.evaluate(() => {
    const session = JSON.parse(localStorage.getItem("dockyard.session"));
    localStorage.setItem(
      "dockyard.session",
      JSON.stringify({ ...session, accessToken: "not.a.token" }),
    );
  });
  await page.reload();
  await waitForText("me", new RegExp(`^${email}$`));
  const after = await storedSession();
  if (after.refreshToken === before.refreshToken || after.accessToken === "not.a.token") {
    throw new Error("the tokens were not rotated");
  }
});

await step("upload a file with progress and see it reach PROCESSED live", async () => {
  const lines = Array.from({ length: 50_000 }, (_, n) => `line ${n} of the web example\n`);
  await page.getByLabel("File").setInputFiles({
    name: "lines.txt",
    mimeType: "text/plain",
    buffer: Buffer.from(lines.join("")),
  });
  await waitForText("upload-progress", /^100%$/);
  await waitForText("file-status", /^PROCESSED$/);
  await waitForText("file-counts", /50000 lines, 300000 words/);
  // The final status came over the subscription, not a reload.
  await waitForText("file-history", /PROCESSED$/);
});

await step("run a task and see its first log line live", async () => {
  await page.getByLabel("Image", { exact: true }).fill(IMAGE);
  await page.getByLabel("Command").fill("echo hello from the web example; sleep 3; echo bye");
  await page.getByRole("button", { name: "Run" }).click();
  await waitForText("task-logs", /^hello from the web example\n$/);
  await waitForText("task-status", /^RUNNING$/);
});

await step("another tab refreshes the session: this one reopens its socket", async () => {
  const before = await storedSession();
  const sockets = openedSockets;
  // The gateway refuses the other tab's first request as if its access token had been revoked:
  // that tab refreshes, and this one takes the new tokens from storage and reopens its socket.
  const other = await context.newPage();
  let refused = false;
  await other.route("**/graphql", (route, request) => {
    if (refused || request.method() !== "POST") return route.continue();
    refused = true;
    return route.continue({ headers: { ...request.headers(), authorization: "Bearer revoked" } });
  });
  await other.goto(APP_URL);
  await other.getByTestId("me").filter({ hasText: email }).waitFor();
  await other.close();
  const after = await storedSession();
  if (after.refreshToken === before.refreshToken) throw new Error("the tokens were not rotated");
  const deadline = Date.now() + TIMEOUT;
  while (openedSockets === sockets) {
    if (Date.now() > deadline) throw new Error("the WebSocket was not reopened");
    await page.waitForTimeout(50);
  }
});

await step("see the task's last log line once and SUCCEEDED live", async () => {
  // The reopened subscription replays the output so far; the app shows each chunk once.
  await waitForText("task-logs", /^hello from the web example\nbye\n$/);
  await waitForText("task-status", /^SUCCEEDED$/);
});

await step("start a workflow and see its steps", async () => {
  await page.getByLabel("Image of its steps").fill(IMAGE);
  await page.getByRole("button", { name: "Start workflow" }).click();
  await waitForText("step-prepare", /^prepare—/);
  await waitForText("step-report", /^reportleft, right/);
  await waitForText("workflow-status", /^SUCCEEDED$/);
  for (const name of ["prepare", "left", "right", "report"]) {
    await waitForText(`step-${name}`, /SUCCEEDED$/);
  }
});

await browser.close();
