// The web UI driven as a user drives it, in Debian's Chromium through Playwright (playwright-core
// from webui/node_modules: it downloads no browser). Run by tests/webui/test_webui_e2e.py, which
// starts the platform (the `platform` fixture) and gives everything through the environment:
//
//   RYAX_URL, RYAX_ADMIN_USER, RYAX_ADMIN_PASSWORD   the gateway (the UI at /) and the admin
//   RYAX_PROJECT            a project of this run's own, created here on the admin page
//   RYAX_REPOSITORY_URL     the example actions as a local git repository
//   RYAX_WORKFLOW_FILE, RYAX_WORKFLOW_NAME, RYAX_DEMO_TEXT   the demo workflow and what to post
//   RYAX_SCREENSHOTS        where each page's screenshot goes (NN-name.png)
//   RYAX_DOWNLOADS          where downloaded files go
//   RYAX_WEBUI_DIR          webui/ (for playwright-core);  RYAX_CHROMIUM  /usr/bin/chromium
//
// Steps: log in as the admin; create the project on the admin page and switch to it with the
// project switcher; add the repository in the library, scan it, build all and wait until every
// action is built; look at the catalogue; import the demo workflow through the studio's API (the
// UI has no import and its drag-and-link editor is not built yet); open it from the dashboard,
// deploy it from its page and wait until it is deployed; start a run from the form generated
// from the trigger; watch the run complete; read its logs; download the report file one step
// wrote; read the results. The last line printed is a JSON summary; the exit code is 0 only if
// every step passed.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const env = process.env;
const need = (key) => {
  const value = env[key];
  if (!value) throw new Error(`${key} is not set`);
  return value;
};
const BASE = need("RYAX_URL").replace(/\/+$/, "");
const ADMIN = need("RYAX_ADMIN_USER");
const PASSWORD = need("RYAX_ADMIN_PASSWORD");
const PROJECT = need("RYAX_PROJECT");
const REPOSITORY_URL = need("RYAX_REPOSITORY_URL");
const REPOSITORY_NAME = env.RYAX_REPOSITORY_NAME || "demo-actions";
const WORKFLOW_FILE = need("RYAX_WORKFLOW_FILE");
const WORKFLOW = need("RYAX_WORKFLOW_NAME");
const TEXT = env.RYAX_DEMO_TEXT || "The cat and the hat";
const SHOTS = need("RYAX_SCREENSHOTS");
const DOWNLOADS = need("RYAX_DOWNLOADS");
const CHROMIUM = env.RYAX_CHROMIUM || "/usr/bin/chromium";
const WEBUI = need("RYAX_WEBUI_DIR");
const BUILD_TIMEOUT = Number(env.RYAX_BUILD_TIMEOUT_MS || 600_000);
const RUN_TIMEOUT = Number(env.RYAX_RUN_TIMEOUT_MS || 180_000);

const { chromium } = createRequire(path.join(WEBUI, "package.json"))("playwright-core");

const started = Date.now();
const summary = { project: PROJECT, steps: [], screenshots: [] };
let page;
let shotNumber = 0;

function say(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}`);
}

async function step(name, body) {
  const t0 = Date.now();
  say(`== ${name}`);
  try {
    await body();
  } catch (error) {
    say(`FAILED: ${name}: ${error instanceof Error ? error.message : String(error)}`);
    if (page) {
      say(`page: ${page.url()}`);
      await page.screenshot({ path: path.join(SHOTS, "failure.png") }).catch(() => undefined);
      say(`screenshot of the failure: ${path.join(SHOTS, "failure.png")}`);
    }
    throw error;
  }
  summary.steps.push({ name, seconds: (Date.now() - t0) / 1000 });
}

/** A screenshot of what the user sees now, once the page has settled. */
async function shot(name) {
  await page.waitForLoadState("load");
  // No spinner left, and the last animations (notifications, modals) done.
  await page.locator(".mantine-Loader-root").first().waitFor({ state: "hidden", timeout: 15_000 }).catch(() => undefined);
  await page.waitForTimeout(400);
  shotNumber += 1;
  const file = `${String(shotNumber).padStart(2, "0")}-${name}.png`;
  // Without the notifications: they pile up in the corner and hide the page's actions.
  await page.screenshot({ path: path.join(SHOTS, file), style: ".mantine-Notifications-root { display: none !important; }" });
  summary.screenshots.push(file);
  say(`screenshot ${file} (${page.url().replace(BASE, "")})`);
}

/** The bearer token of the UI's session (sessionStorage), for the one API call of the test. */
async function sessionToken() {
  const raw = await page.evaluate(() => sessionStorage.getItem("ryax.session"));
  if (!raw) throw new Error("no session in sessionStorage (ryax.session)");
  return JSON.parse(raw).token;
}

async function importWorkflow() {
  const token = await sessionToken();
  const yaml = readFileSync(WORKFLOW_FILE, "utf8");
  const url = `${BASE}/studio/v1/projects/${encodeURIComponent(PROJECT)}/workflows/import`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const response = await fetch(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/yaml" },
      body: yaml,
    });
    const answer = await response.json().catch(() => ({}));
    if (response.ok) return answer;
    // The studio learns of built actions through an event: it may lag behind the builds a little.
    if (Date.now() > deadline || response.status >= 500) {
      throw new Error(`import answered ${response.status}: ${JSON.stringify(answer)}`);
    }
    say(`import answered ${response.status} (${answer.detail ?? answer.error ?? ""}): again in 2 s`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  mkdirSync(DOWNLOADS, { recursive: true });
  const profile = path.join(tmpdir(), `ryax-webui-chromium-${process.pid}`);
  // A fresh profile (--user-data-dir) for each run: Playwright takes it as the persistent
  // context's folder.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    // The machine has no outside network: nothing may try to reach it.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 860 },
    deviceScaleFactor: 1,
    acceptDownloads: true,
    locale: "en-GB",
    timezoneId: "UTC",
    colorScheme: "light",
  });
  try {
    context.setDefaultTimeout(30_000);
    page = context.pages()[0] ?? (await context.newPage());
    const consoleErrors = [];
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(String(error)));
    await scenario();
    summary.console_errors = consoleErrors;
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

async function scenario() {
  await step("open the UI: the gateway's / is the web UI, and asks to log in", async () => {
    await page.goto(`${BASE}/`);
    await page.waitForURL(/\/login/);
    await page.getByLabel("Username").waitFor();
    await shot("login");
  });

  await step(`log in as ${ADMIN}`, async () => {
    await page.getByRole("textbox", { name: /^Username/ }).fill(ADMIN);
    await page.getByRole("textbox", { name: /^Password/ }).fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL((url) => !url.pathname.startsWith("/login"));
  });

  await step(`create the project ${PROJECT} on the administration page`, async () => {
    await page.getByRole("link", { name: "Administration" }).click();
    await page.waitForURL(/\/admin$/);
    await page.getByLabel("New project").fill(PROJECT);
    await page.getByRole("button", { name: "Create project" }).click();
    // The new project is selected below, with its members: the admin is its owner.
    await page.getByRole("table", { name: `Members of ${PROJECT}` }).getByText(ADMIN).waitFor();
    await shot("admin");
  });

  await step(`switch to ${PROJECT} with the project switcher`, async () => {
    await page.getByRole("banner").getByLabel("Project").click();
    await page.getByRole("option", { name: new RegExp(`^${PROJECT}\\b`) }).click();
    await page.waitForURL(new RegExp(`/p/${PROJECT}$`));
    await page.getByRole("heading", { name: "Dashboard" }).waitFor();
    await shot("dashboard-empty");
  });

  await step(`add the repository ${REPOSITORY_NAME} (${REPOSITORY_URL}) in the library`, async () => {
    await page.getByRole("link", { name: "Library" }).click();
    await page.waitForURL(/\/library/);
    await page.getByRole("button", { name: "Add repository" }).click();
    const dialog = page.getByRole("dialog", { name: "Add a git repository" });
    await dialog.getByRole("textbox", { name: /^Name/ }).fill(REPOSITORY_NAME);
    await dialog.getByRole("textbox", { name: /^URL/ }).fill(REPOSITORY_URL);
    await shot("library-add-repository");
    await dialog.getByRole("button", { name: "Add", exact: true }).click();
    await dialog.waitFor({ state: "hidden" });
    await page.getByRole("table", { name: "Repositories" }).getByRole("cell", { name: REPOSITORY_NAME, exact: true }).waitFor();
  });

  await step("scan it: the scan report lists the actions found", async () => {
    await page.getByRole("button", { name: `Scan ${REPOSITORY_NAME}` }).click();
    await page.getByText("make-report").first().waitFor({ timeout: 120_000 });
    await shot("library-scan-report");
  });

  await step("build every action and watch the builds end", async () => {
    await page.getByRole("tab", { name: "Action sources and builds" }).click();
    const sources = page.getByRole("table", { name: "Action sources" });
    await sources.waitFor();
    const buildAll = page.getByRole("button", { name: /^Build all \(\d+\)$/ });
    const label = await buildAll.textContent();
    if (!/\(0\)/.test(label ?? "")) await buildAll.click();
    say(`clicked ${label}`);
    const deadline = Date.now() + BUILD_TIMEOUT;
    let shotWhileBuilding = false;
    for (;;) {
      const building = await sources.getByText(/^(Building|Requested)$/).count();
      const states = await sources.locator("tbody tr td:nth-child(4) .mantine-Badge-label").allTextContents();
      const built = states.filter((s) => s === "Built").length;
      if (!shotWhileBuilding && building > 0) {
        await shot("library-building");
        shotWhileBuilding = true;
      }
      if (building === 0 && built > 0 && states.every((s) => s === "Built" || s === "Invalid")) {
        say(`built: ${built} of ${states.length} source(s)`);
        break;
      }
      if (states.includes("Build failed")) throw new Error(`a build failed: ${states.join(", ")}`);
      if (Date.now() > deadline) throw new Error(`not every action is built after ${BUILD_TIMEOUT / 1000} s: ${states.join(", ")}`);
      await page.waitForTimeout(1000);
    }
    await shot("library-built");
  });

  await step("open a build and read its log", async () => {
    const sources = page.getByRole("table", { name: "Action sources" });
    const row = sources.locator("tbody tr").filter({ hasText: "make-report" }).first();
    await row.getByRole("link").first().click();
    await page.waitForURL(/\/library\/builds\//);
    await page.getByText(/built|Built/).first().waitFor();
    await shot("build");
    await page.goBack();
  });

  await step("the catalogue shows the ready actions", async () => {
    await page.getByRole("tab", { name: "Catalogue" }).click();
    await page.getByText("Make a text report").first().waitFor({ timeout: 60_000 });
    await shot("library-catalogue");
  });

  let workflowId;
  await step(`import the workflow ${WORKFLOW} (studio API: no import in the UI, no editor yet)`, async () => {
    const imported = await importWorkflow();
    workflowId = imported.id ?? imported.workflow?.id;
    say(`workflow ${workflowId}`);
    summary.workflow_id = workflowId;
  });

  await step("the dashboard shows the workflow; open it", async () => {
    await page.getByRole("link", { name: "Dashboard" }).click();
    await page.waitForURL(new RegExp(`/p/${PROJECT}$`));
    const card = page.getByRole("article", { name: `Workflow ${WORKFLOW}` });
    await card.waitFor();
    // The trigger is read from the workflow's definition: wait until the card shows it.
    await card.getByLabel("Loading the trigger").waitFor({ state: "hidden" });
    await shot("dashboard");
    await card.getByRole("link", { name: WORKFLOW }).first().click();
    await page.waitForURL(/\/workflows\/[^/]+$/);
    await page.getByRole("heading", { name: WORKFLOW }).waitFor();
    await page.getByRole("button", { name: "Deploy" }).waitFor();
    await shot("workflow");
  });

  await step("deploy it from its page and wait until it is deployed", async () => {
    await page.getByRole("button", { name: "Deploy" }).click();
    const deployment = page.getByRole("region", { name: "Deployment" });
    const state = deployment.locator(".mantine-Badge-label").first();
    await state.filter({ hasText: /^(Deployed|Failed)$/ }).waitFor({ timeout: 300_000 });
    if ((await state.textContent()) === "Failed") {
      await shot("workflow-deploy-failed");
      throw new Error(`the deployment failed: ${await deployment.innerText()}`);
    }
    await page.getByRole("form", { name: "New run" }).getByLabel(/^Text/).waitFor({ timeout: 60_000 });
    await shot("workflow-deployed");
  });

  let runId;
  await step("start a run from the form generated from the trigger", async () => {
    const form = page.getByRole("form", { name: "New run" });
    await form.getByLabel(/^Text/).fill(TEXT);
    await form.getByRole("button", { name: "Start run" }).click();
    await page.waitForURL(/\/runs\/[^/]+$/);
    runId = page.url().split("/").pop();
    summary.run_id = runId;
    say(`run ${runId}`);
  });

  await step("watch the run complete", async () => {
    await page.getByRole("heading", { name: `Run of ${WORKFLOW}` }).waitFor();
    // The run's own state: the badge under the page's heading (the graph has one per step).
    const state = page.locator("main h2 + div .mantine-Badge-label").first();
    await state.filter({ hasText: /^(Completed|Failed|Cancelled)$/ }).waitFor({ timeout: RUN_TIMEOUT });
    await page.getByRole("button", { name: "Cancel run" }).waitFor({ state: "hidden" });
    summary.state = (await state.textContent()) ?? "";
    if (summary.state !== "Completed") throw new Error(`the run ended ${summary.state}`);
    await shot("run");
  });

  await step("read its logs", async () => {
    await page.getByRole("tab", { name: "Logs" }).click();
    const log = page.getByRole("log", { name: "Log lines" });
    await log.waitFor();
    await log.getByText(/\S/).first().waitFor({ timeout: 60_000 });
    summary.log_lines = await log.locator(":scope *").filter({ hasText: /\S/ }).count();
    summary.log_text = ((await log.innerText()) ?? "").slice(0, 4000);
    await shot("run-logs");
  });

  await step("download the report file the run wrote", async () => {
    await page.getByRole("tab", { name: /^Steps/ }).click();
    const steps = page.getByRole("table", { name: "Steps of the run" });
    await steps.getByRole("button", { name: /report/i }).first().click();
    const download = page.getByRole("button", { name: /^Download report\.txt/ }).first();
    await download.waitFor();
    await shot("run-step-report");
    const [file] = await Promise.all([page.waitForEvent("download"), download.click()]);
    const target = path.join(DOWNLOADS, file.suggestedFilename());
    await file.saveAs(target);
    summary.download = { name: file.suggestedFilename(), path: target, content: readFileSync(target, "utf8") };
    say(`downloaded ${file.suggestedFilename()} (${summary.download.content.length} characters)`);
  });

  await step("read the results", async () => {
    await page.getByRole("tab", { name: "Results" }).click();
    const results = page.getByRole("table", { name: "Results of the run" });
    await results.waitFor();
    summary.results_text = (await results.innerText()) ?? "";
    await shot("run-results");
  });

  await step("the runs page lists the run", async () => {
    await page.getByRole("link", { name: "Runs" }).click();
    await page.waitForURL(/\/runs$/);
    await page.getByText(WORKFLOW).first().waitFor();
    await shot("runs");
  });

  await step("the sites page shows the local site", async () => {
    await page.getByRole("link", { name: "Sites" }).click();
    await page.waitForURL(/\/sites$/);
    await page.getByText(/Online/).first().waitFor({ timeout: 60_000 });
    await shot("sites");
  });
}

try {
  await main();
  summary.seconds = (Date.now() - started) / 1000;
  say(`OK in ${summary.seconds.toFixed(1)} s`);
  console.log(JSON.stringify(summary));
} catch (error) {
  summary.error = error instanceof Error ? error.stack ?? error.message : String(error);
  console.log(JSON.stringify(summary));
  process.exitCode = 1;
}
