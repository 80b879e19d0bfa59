// Headless Chromium checks of Gauntlet's pages, driven by playwright-core against the
// system Chromium. Usage: node check.mjs PLAYWRIGHT_CORE_DIR CASES.json
// Each case: {name, mode: "report" | "ui", url, key?, expect, screenshot}. Prints one JSON
// line per case ({name, ok, errors, load_ms}); exits 1 when any check fails.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [pwDir, casesPath] = process.argv.slice(2);
const { chromium } = await import(pathToFileURL(`${pwDir}/playwright-core/index.mjs`).href);
const { executable, cases } = JSON.parse(readFileSync(casesPath, "utf8"));
const browser = await chromium.launch({
  executablePath: executable,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
let failed = false;

function near(a, b) { return Math.abs(a - b) < 1e-9; }

async function watch(page, origin, errors, key, allowed) {
  const seen = [];
  page.on("request", (r) => {
    const url = r.url();
    seen.push(url);
    const local = url.startsWith("blob:") || url.startsWith("data:") || (origin && url.startsWith(origin));
    if (!local && url !== allowed) errors.push(`network request to ${url}`);
    if (key && url.includes(key)) errors.push(`the API key appears in a URL: ${url}`);
  });
  page.on("dialog", (d) => { errors.push(`a dialog opened: ${d.message()}`); d.dismiss(); });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  // A 401 before the UI has the key is expected; the browser logs it as an error.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().includes("status of 401")) errors.push(`console error: ${m.text()}`);
  });
  return seen;
}

async function checkReport(page, expect, errors) {
  await page.waitForSelector("body[data-ready='1']", { timeout: 60000 });
  const rows = await page.locator("#example-rows tr").count();
  if (rows !== expect.rows) errors.push(`expected ${expect.rows} example rows, found ${rows}`);
  const points = await page.$$eval("circle.point", (cs) => cs.map((c) => ({
    series: c.getAttribute("data-series"), confidence: Number(c.getAttribute("data-confidence")), rate: Number(c.getAttribute("data-rate")),
  })));
  if (points.length !== expect.points.length) errors.push(`expected ${expect.points.length} curve points, found ${points.length}`);
  expect.points.forEach((p, i) => {
    const q = points[i];
    if (!q || q.series !== p.series || !near(q.confidence, p.confidence) || !near(q.rate, p.rate)) {
      errors.push(`curve point ${i}: expected ${JSON.stringify(p)}, found ${JSON.stringify(q)}`);
    }
  });
  for (const [outcome, n] of Object.entries(expect.by_outcome || {})) {
    await page.click(`button[data-outcome='${outcome}']`);
    const k = await page.locator("#example-rows tr").count();
    if (k !== n) errors.push(`after the ${outcome} filter: expected ${n} rows, found ${k}`);
    const wrong = await page.locator(`#example-rows tr:not(.${outcome})`).count();
    if (wrong) errors.push(`the ${outcome} filter shows ${wrong} rows of other outcomes`);
  }
  if (expect.by_outcome) await page.click("button[data-outcome='all']");
  if (await page.evaluate(() => window.__xss !== undefined)) errors.push("a hostile text executed");
  for (const text of expect.texts || []) {
    const shown = await page.evaluate((t) => document.body.innerText.includes(t), text);
    if (!shown) errors.push(`the text ${JSON.stringify(text)} is not shown as text`);
  }
}

for (const c of cases) {
  const errors = [];
  const context = await browser.newContext();
  const page = await context.newPage();
  const origin = c.url.startsWith("http") ? new URL(c.url).origin : null;
  await watch(page, origin, errors, c.key, c.url);
  const started = Date.now();
  let load_ms = null;
  try {
    if (c.mode === "report") {
      if (c.key) await page.setExtraHTTPHeaders({ authorization: `Bearer ${c.key}` });
      await page.goto(c.url);
      await checkReport(page, c.expect, errors);
      load_ms = Date.now() - started;
    } else if (c.mode === "ui") {
      await page.goto(c.url);
      if (c.key) {
        await page.fill("#key", c.key);
        await page.click("#key-form button");
      }
      await page.waitForSelector("tr.audit[data-state='succeeded']", { timeout: 60000 });
      const listed = await page.locator("tr.audit").count();
      if (listed < c.expect.min_audits) errors.push(`expected at least ${c.expect.min_audits} audits listed, found ${listed}`);
      // Submit an audit on a named dataset; the list grows.
      await page.fill("#dataset", c.expect.dataset);
      await page.selectOption("#attack", c.expect.attack);
      await page.fill("#limit", "3");
      await page.click("#submit-form button");
      await page.waitForFunction((n) => document.querySelectorAll("tr.audit").length > n, listed, { timeout: 30000 });
      // Open a report: a new window with the same report page.
      const [popup] = await Promise.all([
        context.waitForEvent("page"),
        page.click("tr.audit[data-state='succeeded'] button.open"),
      ]);
      await watch(popup, origin, errors, c.key, c.url);
      await popup.waitForSelector("body[data-ready='1']", { timeout: 60000 });
      if (await popup.locator("#example-rows tr").count() < 1) errors.push("the opened report shows no example");
      if (await popup.evaluate(() => window.__xss !== undefined)) errors.push("a hostile text executed in the opened report");
      load_ms = Date.now() - started;
    }
    if (c.screenshot) await page.screenshot({ path: c.screenshot, fullPage: true });
  } catch (e) {
    const shown = await page.locator("#message").textContent().catch(() => null);
    errors.push(`${e}${shown ? ` (the page says: ${shown})` : ""}`);
  }
  await context.close();
  if (errors.length) failed = true;
  console.log(JSON.stringify({ name: c.name, ok: errors.length === 0, errors, load_ms }));
}
await browser.close();
process.exit(failed ? 1 : 0);
