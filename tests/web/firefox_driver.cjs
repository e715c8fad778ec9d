// Drives the runtime page in headless Firefox ESR through puppeteer-core (WebDriver BiDi), for
// tests/web/test_webgpu_firefox.py: boots the page, then runs the steps given as JSON and prints
// one JSON object with the results. Usage:
//   node firefox_driver.cjs MODULES_DIR PREFS_JSON URL STEPS_JSON
// STEPS_JSON: {"query": "?autostart=0...", "python": [code, ...], "gradients": {ids, seed, backend} | null,
//              "train": [{iterations, backend}, ...], "timeout_ms": N}; each result (or its error) is reported.
"use strict";
const path = require("path");
const fs = require("fs");

async function main() {
  const [modules, prefsPath, url, stepsPath] = process.argv.slice(2);
  const puppeteer = require(path.join(modules, "puppeteer-core"));
  const steps = JSON.parse(fs.readFileSync(stepsPath, "utf8"));
  const prefs = Object.assign(JSON.parse(fs.readFileSync(prefsPath, "utf8")),
                              {"dom.webgpu.enabled": true, "gfx.webgpu.ignore-blocklist": true});
  const out = {};
  const browser = await puppeteer.launch({
    browser: "firefox", protocol: "webDriverBiDi", executablePath: steps.firefox || "/usr/bin/firefox-esr",
    headless: true, extraPrefsFirefox: prefs,
    env: Object.assign({}, process.env, {MOZ_REMOTE_SETTINGS_DEVTOOLS: "1"}),
  });
  try {
    out.version = await browser.version();
    const page = await browser.newPage();
    page.setDefaultTimeout(steps.timeout_ms || 120000);
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForFunction("window.sukiyaki && (window.sukiyaki.state.ready || window.sukiyaki.state.errors.length)",
                               {polling: 250});
    out.state = await page.evaluate(() => window.sukiyaki.state);
    out.python = [];
    for (const code of steps.python || []) {
      try {
        out.python.push({result: await page.evaluate((c) => window.sukiyaki.request("python", {code: c}), code)});
      } catch (err) {
        out.python.push({error: String(err.message || err)});
      }
    }
    if (steps.gradients) {
      try {
        out.gradients = await page.evaluate((g) => window.sukiyaki.request("gradients", g), steps.gradients);
      } catch (err) {
        out.gradients = {error: String(err.message || err)};
      }
    }
    out.train = [];
    for (const options of steps.train || []) {
      await page.evaluate((o) => {
        window.sukiyaki.state.progress = [];
        window.sukiyaki.send("train", {options: Object.assign({val_every: 0, batch_size: 64}, o)});
      }, options);
      await page.waitForFunction("document.getElementById('status').textContent.startsWith('stopped at iteration')"
                                 + " || window.sukiyaki.state.errors.length", {polling: 250});
      const st = await page.evaluate(() => window.sukiyaki.state);
      out.train.push({progress: st.progress, errors: st.errors});
      await page.evaluate(() => { document.getElementById("status").textContent = "ready"; });
    }
    out.page_errors = errors;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => { process.stderr.write(String(err && err.stack || err) + "\n"); process.exit(1); });
