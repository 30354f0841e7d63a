// The form portal (postgw) in a real browser: Debian's Chromium through playwright-core (from
// webui/node_modules), no JavaScript of ours on the page. Driven by test_forms_browser.py.
//   RYAX_FORM_URL  the form's address;  RYAX_KEY  a project API key;
//   RYAX_WEBUI_DIR webui/ (for playwright-core);  RYAX_CHROMIUM  /usr/bin/chromium;
//   RYAX_UPLOAD    a file to upload.
// Prints one JSON line: what the pages showed at each step.
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const need = (key) => {
  const value = process.env[key];
  if (!value) throw new Error(`${key} is not set`);
  return value;
};
const FORM = need("RYAX_FORM_URL");
const { chromium } = createRequire(path.join(need("RYAX_WEBUI_DIR"), "package.json"))("playwright-core");

const context = await chromium.launchPersistentContext(path.join(tmpdir(), `ryax-form-${process.pid}`), {
  executablePath: need("RYAX_CHROMIUM"),
  headless: true,
  javaScriptEnabled: false, // the form must work without script
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const seen = {};
try {
  const page = await context.newPage();
  let answer = await page.goto(FORM);
  seen.first = { status: answer.status(), heading: await page.textContent("h1") };
  // The sign-in page: its label names the field.
  await page.getByLabel("Project API key or access token").fill(need("RYAX_KEY"));
  [answer] = await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign in" }).click()]);
  seen.form = { url: page.url(), heading: await page.textContent("h1") };
  // A submission without its required text: the form again with the error by the field.
  await page.getByLabel("Mode").selectOption("slow");
  [answer] = await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Submit" }).click()]);
  seen.bad = {
    status: answer.status(),
    error: await page.textContent("#field-text-error"),
    described: await page.getAttribute("#field-text", "aria-describedby"),
    mode: await page.inputValue("#field-mode"),
  };
  // Filled in, with a file: the run's page.
  await page.getByLabel("Your <text> (required)").fill("from a browser");
  await page.getByLabel("Mode").selectOption("fast");
  await page.setInputFiles("#field-doc", need("RYAX_UPLOAD"));
  [answer] = await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Submit" }).click()]);
  seen.good = { status: answer.status(), text: await page.textContent("main"), runId: (await answer.allHeaders())["ryax-run-id"] };
  // Signing out: the sign-in page again.
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign out" }).click()]);
  answer = await page.goto(FORM);
  seen.after = { status: answer.status(), hasKey: (await page.locator("#key").count()) === 1 };
} finally {
  await context.close();
}
console.log(JSON.stringify(seen));
