// The web UI driven as a user drives it, in Debian's Chromium through Playwright (playwright-core
// from webui/node_modules: it downloads no browser). Run by tests/webui/test_webui_e2e.py, which
// starts the platform (the `platform` fixture) and gives everything through the environment:
//
//   RYAX_URL, RYAX_ADMIN_USER, RYAX_ADMIN_PASSWORD   the gateway (the UI at /) and the admin
//   RYAX_PROJECT            a project of this run's own, created here on the admin page
//   RYAX_REPOSITORY_URL     the example actions as a local git repository
//   RYAX_WORKFLOW_NAME, RYAX_WORKFLOW_DESCRIPTION, RYAX_DEMO_TEXT   the demo workflow, what to post
//   RYAX_SCREENSHOTS        where each page's screenshot goes (NN-name.png)
//   RYAX_DOWNLOADS          where downloaded files go
//   RYAX_WEBUI_DIR          webui/ (for playwright-core);  RYAX_CHROMIUM  /usr/bin/chromium
//
// Steps: log in as the admin; create the project on the admin page and switch to it with the
// project switcher; add the repository in the library, scan it, build all and wait until every
// action is built; look at the catalogue; BUILD the demo workflow in the studio editor: drag each
// action from the catalogue onto the canvas, draw the edges (output to input, step to step),
// check that an edge of the wrong type is refused, type the static values, declare the trigger's
// request field and the results, and export its YAML; open it from the dashboard, deploy it from
// its page and wait until it is deployed; start a run from the form generated from the trigger;
// watch the run complete; read its logs; download the report file one step wrote; read the
// results. Then the timings: the editor with a 100-step workflow (open, drag a step, add one) and
// the dashboard with 200 workflows (created through the studio's API). The last line printed is
// a JSON summary; the exit code is 0 only if every step passed.
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
const WORKFLOW = need("RYAX_WORKFLOW_NAME");
const WORKFLOW_DESCRIPTION = env.RYAX_WORKFLOW_DESCRIPTION || "";
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

/** A call of the platform's API with the UI's token (the timings' bulk set-up only). */
async function callApi(method, url, body, contentType = "application/json") {
  const token = await sessionToken();
  const deadline = Date.now() + 60_000;
  for (;;) {
    const response = await fetch(`${BASE}${url}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": contentType }) },
      body: body === undefined ? undefined : contentType === "application/json" ? JSON.stringify(body) : body,
    });
    const answer = await response.json().catch(() => ({}));
    if (response.ok) return answer;
    if (Date.now() > deadline || response.status < 500) throw new Error(`${method} ${url} answered ${response.status}: ${JSON.stringify(answer)}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** A link of the main navigation (a page may have another link of the same name). */
const nav = (name) => page.getByRole("navigation", { name: "Main navigation" }).getByRole("link", { name, exact: true });

// ---- the editor ---------------------------------------------------------------------------

const canvas = () => page.locator(".react-flow").first();
const nodeOf = (id) => page.locator(`.react-flow__node[data-id="${id}"]`);
const handleOf = (node, handle) => page.locator(`.react-flow__handle[data-nodeid="${node}"][data-handleid="${handle}"]`);

/** The canvas's viewport: translation and zoom of its transform. */
async function viewport() {
  const matrix = await page.locator(".react-flow__viewport").first().evaluate((el) => getComputedStyle(el).transform);
  const m = /matrix\(([^)]+)\)/.exec(matrix);
  const [a, , , , e, f] = m ? m[1].split(",").map(Number) : [1, 0, 0, 0, 0, 0];
  return { zoom: a, x: e, y: f };
}

/** Drag an action from the catalogue and drop it where the canvas shows `at` (flow pixels). */
async function dropAction(actionName, at) {
  for (let attempt = 0; attempt < 8; attempt++) {
    const box = await canvas().boundingBox();
    const v = await viewport();
    const target = { x: v.x + at.x * v.zoom + 4, y: v.y + at.y * v.zoom + 4 };
    if (target.x > 10 && target.y > 10 && target.x < box.width - 80 && target.y < box.height - 80) {
      const item = page.getByRole("listitem", { name: `Action ${actionName}` });
      await item.dragTo(canvas(), { targetPosition: target });
      return;
    }
    // not on screen: zoom out and place it again
    await page.getByRole("button", { name: "zoom out" }).click();
    await page.waitForTimeout(250);
  }
  throw new Error(`no room on the canvas for ${actionName}`);
}

/** Draw an edge: press on one handle, move, release on the other. */
async function drawEdge(from, fromHandle, to, toHandle) {
  // The studio's answer to the last edit may change a node's problems, so its height and where
  // its handles are: wait for it, as a user sees the node before reaching for a handle.
  await saved();
  const a = await handleOf(from, fromHandle).boundingBox();
  const b = await handleOf(to, toHandle).boundingBox();
  if (!a || !b) throw new Error(`handle ${from}/${fromHandle} or ${to}/${toHandle} is not on the canvas`);
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 6 });
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 6 });
  await page.mouse.up();
}

async function connect(from, fromHandle, to, toHandle, edgeId) {
  await drawEdge(from, fromHandle, to, toHandle);
  try {
    await page.locator(`.react-flow__edge[data-id="${edgeId}"]`).waitFor({ timeout: 10_000 });
  } catch (error) {
    // what was under the pointer at each end, and what the page said
    const ends = [];
    for (const [node, handle] of [[from, fromHandle], [to, toHandle]]) {
      const box = await handleOf(node, handle).boundingBox();
      ends.push(
        await page.evaluate(
          ({ x, y }) => {
            const el = document.elementFromPoint(x, y);
            return el ? `${el.tagName}.${String(el.className)} ${el.getAttribute("data-handleid") ?? ""}` : "nothing";
          },
          { x: box.x + box.width / 2, y: box.y + box.height / 2 },
        ),
      );
    }
    const said = await page.locator(".mantine-Notification-root").allInnerTexts();
    say(`no edge ${edgeId}: under the pointer ${JSON.stringify(ends)}; notifications ${JSON.stringify(said)}`);
    throw error;
  }
}

async function saved() {
  await page.getByText("All changes saved").waitFor({ timeout: 30_000 });
}

async function selectStep(id) {
  await nodeOf(id).locator("p").first().click();
  await page.getByRole("region", { name: `Step ${id}` }).or(page.locator(`section[aria-label="Step ${id}"]`)).first().waitFor();
}

/** Type a static value into an input of the selected step and commit it (Enter). */
async function setStatic(step, input, value) {
  const field = page.locator(`[data-input="${step}.${input}"]`).locator(".mantine-Input-input").first();
  await field.fill(value);
  await field.press("Enter");
  await saved();
}

async function pickOption(input, option) {
  await input.click();
  await page.getByRole("option", { name: option, exact: true }).click();
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
    await nav("Administration").click();
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
    await nav("Library").click();
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
  await step(`create ${WORKFLOW} in the studio and open the editor`, async () => {
    await page.setViewportSize({ width: 1600, height: 1000 });
    await nav("Studio editor").click();
    await page.waitForURL(/\/studio$/);
    await page.getByRole("textbox", { name: "New workflow" }).fill(WORKFLOW);
    await page.getByRole("button", { name: "Create and edit" }).click();
    await page.waitForURL(/\/workflows\/[^/]+\/edit$/);
    workflowId = page.url().split("/").slice(-2)[0];
    summary.workflow_id = workflowId;
    await canvas().waitFor();
    await page.getByRole("listitem", { name: "Action Make a text report" }).waitFor({ timeout: 60_000 });
    say(`workflow ${workflowId}`);
  });

  // The demo's steps (examples/workflows/demo.yaml), each dropped on its own cell of the grid.
  const CELL = { x: 320, y: 200 };
  const STEPS = [
    ["api", "HTTP API JSON", 1, 0],
    ["make-report", "Make a text report", 1, 1],
    ["word-count", "Count words", 1, 2],
    ["uppercase", "Uppercase a text", 0, 3],
    ["slugify-text", "Slugify a text", 2, 3],
    ["concat", "Join two texts", 1, 4],
    ["print-publisher", "Print to the run log", 1, 5],
  ];
  await step("drag each action of the demo from the catalogue onto the canvas", async () => {
    for (const [, name, cx, cy] of STEPS) {
      const before = await page.locator(".react-flow__node").count();
      await dropAction(name, { x: cx * CELL.x, y: cy * CELL.y });
      await page.waitForFunction((n) => document.querySelectorAll(".react-flow__node").length > n, before);
    }
    await saved();
    const ids = await page.locator(".react-flow__node").evaluateAll((els) => els.map((e) => e.getAttribute("data-id")));
    say(`steps: ${ids.join(", ")}`);
    summary.editor_steps = ids;
  });

  await step("declare the trigger's request field and its endpoint", async () => {
    await selectStep("httpapijson");
    await page.getByRole("button", { name: "Add output" }).click();
    const output = page.getByRole("group", { name: "Output 1" });
    await output.getByLabel("Name").fill("text");
    await output.getByLabel("Label").fill("Text");
    await output.getByLabel("Help").fill("The text to analyse.");
    await page.getByRole("button", { name: "Apply outputs" }).click();
    await saved();
    await handleOf("httpapijson", "o:text").waitFor();
    await setStatic("httpapijson", "path", "/demo/word-count");
    await setStatic("httpapijson", "summary", "Count the words of a text");
    await page.getByRole("button", { name: "fit view" }).click();
    await page.waitForTimeout(400);
    await shot("editor-problems");
  });

  await step("link outputs to inputs and steps to steps by drawing edges", async () => {
    await connect("httpapijson", "o:text", "make-report", "i:text", "ref:make-report.text");
    await connect("make-report", "o:report", "word-count", "i:document", "ref:word-count.document");
    await connect("word-count", "out", "uppercase", "in", "link:word-count>uppercase");
    await connect("word-count", "out", "slugify-text", "in", "link:word-count>slugify-text");
    await connect("httpapijson", "o:text", "uppercase", "i:text", "ref:uppercase.text");
    await connect("httpapijson", "o:text", "slugify-text", "i:text", "ref:slugify-text.text");
    await connect("uppercase", "o:upper", "concat", "i:left", "ref:concat.left");
    await connect("slugify-text", "o:slug", "concat", "i:right", "ref:concat.right");
    await connect("concat", "o:text", "print-publisher", "i:text", "ref:print-publisher.text");
    await connect("word-count", "o:total", "print-publisher", "i:total", "ref:print-publisher.total");
    await connect("word-count", "o:counts", "print-publisher", "i:report", "ref:print-publisher.report");
    await saved();
  });

  await step("an edge between different types is refused, and says why", async () => {
    const edges = await page.locator(".react-flow__edge").count();
    await drawEdge("word-count", "o:total", "concat", "i:separator");
    await page.getByText("a string input cannot take an integer output").first().waitFor();
    if ((await page.locator(".react-flow__edge").count()) !== edges) throw new Error("the refused edge was drawn");
  });

  await step("undo an edge with Ctrl+Z, redo it with the Redo button", async () => {
    const edge = page.locator('.react-flow__edge[data-id="ref:print-publisher.report"]');
    await page.locator(".react-flow__pane").click({ position: { x: 5, y: 5 } });
    await page.keyboard.press("Control+z");
    await edge.waitFor({ state: "detached", timeout: 10_000 });
    await saved();
    await page.getByRole("button", { name: "Redo" }).click();
    await edge.waitFor({ timeout: 10_000 });
    await saved();
  });

  await step("type the static values and set the results", async () => {
    await selectStep("make-report");
    await setStatic("make-report", "title", "Posted text");
    await selectStep("concat");
    await setStatic("concat", "separator", " | ");
    await page.locator(".react-flow__pane").click({ position: { x: 5, y: 5 } });
    const description = page.getByRole("region", { name: "Workflow", exact: true }).getByLabel("Description");
    await description.fill(WORKFLOW_DESCRIPTION);
    await description.blur();
    await saved();
    for (const [key, output] of [["summary", "concat.text (string)"], ["words", "word-count.total (integer)"]]) {
      await page.getByRole("button", { name: "Add result" }).click();
      const row = page.getByRole("group", { name: /^Result \d+$/ }).last();
      await row.getByLabel("Key").fill(key);
      await pickOption(row.getByLabel("Output"), output);
    }
    await page.getByRole("button", { name: "Apply results" }).click();
    await saved();
    await page.getByText("None: the workflow can be deployed.").waitFor();
    await page.getByRole("button", { name: "fit view" }).click();
    await page.waitForTimeout(400);
    await shot("editor");
    await selectStep("print-publisher");
    await shot("editor-step");
  });

  await step("export the YAML the editor built", async () => {
    const [file] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export YAML" }).click()]);
    const target = path.join(DOWNLOADS, "built-in-the-editor.yaml");
    await file.saveAs(target);
    summary.editor_yaml = readFileSync(target, "utf8");
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await step("the dashboard shows the workflow; open it", async () => {
    await nav("Dashboard").click();
    await page.waitForURL(new RegExp(`/p/${PROJECT}$`));
    const card = page.getByRole("article", { name: `Workflow ${WORKFLOW}` });
    await card.waitFor();
    // The trigger comes with the studio's list: the card shows it at once.
    await card.getByText("HTTP API JSON").waitFor();
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
    await nav("Runs").click();
    await page.waitForURL(/\/runs$/);
    await page.getByText(WORKFLOW).first().waitFor();
    await shot("runs");
  });

  await step("redeploy the workflow from its page: undeployed, then deployed again", async () => {
    await nav("Dashboard").click();
    await page.getByRole("article", { name: `Workflow ${WORKFLOW}` }).getByRole("link", { name: WORKFLOW }).first().click();
    await page.waitForURL(/\/workflows\/[^/]+$/);
    const deployment = page.getByRole("region", { name: "Deployment" });
    await deployment.getByRole("button", { name: "Redeploy", exact: true }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText(/runs going on are cancelled/).waitFor();
    await dialog.getByRole("button", { name: "Redeploy", exact: true }).click();
    // Told once the undeploy ended and the deploy was accepted; then deployed again.
    await page.getByText(`Deploying ${WORKFLOW} again…`).waitFor({ timeout: 300_000 });
    const state = deployment.locator(".mantine-Badge-label").first();
    await state.filter({ hasText: /^(Deployed|Failed)$/ }).waitFor({ timeout: 300_000 });
    summary.redeployed = (await state.textContent()) ?? "";
    await shot("workflow-redeployed");
  });

  await step("the sites page shows the local site", async () => {
    await nav("Sites").click();
    await page.waitForURL(/\/sites$/);
    await page.getByText(/Online/).first().waitFor({ timeout: 60_000 });
    await shot("sites");
  });

  if (env.RYAX_WEBUI_TIMINGS !== "0") await timings();
}

/** A trigger and 99 steps, each reading the posted text, in a chain on a 10 x 10 grid. */
function bigWorkflowYaml(name) {
  const lines = ["apiVersion: \"ryax.tech/v2.0\"", "kind: Workflows", "spec:", `  human_name: ${name}`, "  functions:"];
  lines.push("  - id: api", "    from: httpapijson", "    version: \"1.0\"", "    position: {x: 0, y: 0}", "    inputs_values:", "      path: /bench/big");
  lines.push("    outputs:", "    - {name: text, human_name: Text, help: A text., type: string, origin: body}", "    streams_to: [s1]");
  for (let i = 1; i < 100; i++) {
    lines.push(`  - id: s${i}`, "    from: uppercase", "    version: \"1.0\"", `    position: {x: ${i % 10}, y: ${Math.floor(i / 10)}}`);
    lines.push("    inputs_values:", "      text: {reference_value: api.text}", `    streams_to: [${i < 99 ? `s${i + 1}` : ""}]`);
  }
  return lines.join("\n") + "\n";
}

async function timings() {
  const perf = {};
  summary.perf = perf;
  const project = encodeURIComponent(PROJECT);
  let bigId;
  await step("timings: the editor with a 100-step workflow", async () => {
    await page.setViewportSize({ width: 1600, height: 1000 });
    const big = await callApi("POST", `/studio/v1/projects/${project}/workflows/import?draft=true`, bigWorkflowYaml("bench-100-steps"), "application/yaml");
    bigId = big.id;
    await page.goto(`${BASE}/p/${project}/workflows/${bigId}/edit`);
    await page.waitForFunction(() => document.querySelectorAll(".react-flow__node").length >= 100, null, { timeout: 60_000 });
    perf.editor_open_ms = await page.evaluate(() => Math.round(performance.now()));
    await saved();
    // frame intervals while a step is dragged across the canvas
    await page.evaluate(() => {
      const w = window;
      w.__frames = [];
      let last = performance.now();
      const loop = (t) => {
        w.__frames.push(t - last);
        last = t;
        if (w.__frames.length < 100000 && !w.__stop) requestAnimationFrame(loop);
      };
      w.__stop = false;
      requestAnimationFrame(loop);
    });
    const box = await nodeOf("s55").locator("p").first().boundingBox();
    const t0 = Date.now();
    await page.mouse.move(box.x + 10, box.y + 5);
    await page.mouse.down();
    for (let i = 1; i <= 30; i++) await page.mouse.move(box.x + 10 + i * 6, box.y + 5 + i * 3);
    await page.mouse.up();
    const dragMs = Date.now() - t0;
    const frames = await page.evaluate(() => {
      window.__stop = true;
      return window.__frames.slice(2);
    });
    frames.sort((a, b) => a - b);
    perf.editor_drag = {
      moves: 30,
      duration_ms: dragMs,
      frames: frames.length,
      median_frame_ms: Math.round(frames[Math.floor(frames.length / 2)] ?? 0),
      p95_frame_ms: Math.round(frames[Math.floor(frames.length * 0.95)] ?? 0),
      max_frame_ms: Math.round(frames[frames.length - 1] ?? 0),
    };
    const t1 = Date.now();
    await saved();
    perf.editor_move_saved_ms = Date.now() - t1;
    // add a step: from the click to the node on the canvas (optimistic), then to saved
    await selectStep("s99");
    perf.editor_add_shown_ms = await page.evaluate(async () => {
      const button = document.querySelector('button[aria-label="Add Uppercase a text to the workflow"]');
      if (!button) throw new Error("no add button for Uppercase a text");
      const before = document.querySelectorAll(".react-flow__node").length;
      const t = performance.now();
      button.click();
      await new Promise((resolve) => {
        const check = () => (document.querySelectorAll(".react-flow__node").length > before ? resolve() : requestAnimationFrame(check));
        check();
      });
      return Math.round(performance.now() - t);
    });
    const t2 = Date.now();
    await saved();
    perf.editor_add_saved_ms = Date.now() - t2;
    await page.getByRole("button", { name: "fit view" }).click();
    await page.waitForTimeout(400);
    await shot("editor-100-steps");
    say(`editor, 100 steps: ${JSON.stringify(perf)}`);
  });

  await step("timings: the dashboard with 200 workflows", async () => {
    // Copies of the demo workflow (7 steps, the HTTP trigger): each card has a trigger to show.
    const listed = (await callApi("GET", `/studio/v1/projects/${project}/workflows`)).workflows;
    const demo = listed.find((w) => w.name === WORKFLOW);
    if (!demo) throw new Error(`the dashboard's timing: no workflow ${WORKFLOW}`);
    for (let i = listed.length; i < 200; i++) {
      await callApi("POST", `/studio/v1/projects/${project}/workflows/${demo.id}/copy`, { name: `bulk-${String(i).padStart(3, "0")}` });
    }
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.goto(`${BASE}/p/${project}`);
    // The 200 cards, each with its trigger (no "Loading the trigger" placeholder left).
    await page.waitForFunction(
      () =>
        document.querySelectorAll('article[aria-label^="Workflow "]').length >= 200 &&
        document.querySelectorAll('[aria-label="Loading the trigger"]').length === 0,
      null,
      { timeout: 60_000, polling: "raf" },
    );
    perf.dashboard_cards_ms = await page.evaluate(() => Math.round(performance.now()));
    perf.dashboard_bulk = 200 - listed.length;
    perf.dashboard_bulk_triggers = await page.evaluate(
      () => [...document.querySelectorAll('article[aria-label^="Workflow bulk-"]')].filter((a) => a.textContent.includes("HTTP API JSON")).length,
    );
    // interactive: the search filters the 200 cards
    perf.dashboard_search_ms = await page.evaluate(async () => {
      const input = document.querySelector('input[placeholder="Name or description"]');
      const t = performance.now();
      const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
      setter.call(input, "bulk-19");
      input.dispatchEvent(new Event("input", { bubbles: true }));
      await new Promise((resolve) => {
        const check = () => (document.querySelectorAll('article[aria-label^="Workflow "]').length <= 11 ? resolve() : requestAnimationFrame(check));
        check();
      });
      return Math.round(performance.now() - t);
    });
    say(`dashboard, 200 workflows: ${JSON.stringify(perf)}`);
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
