#!/usr/bin/env node
// Opens an autoprec report in headless Chromium and checks what a reader
// needs: no request leaves the page, no console error or script error, every
// plot rendered (a non-empty SVG with marks), and the expected texts (e.g.
// every layer name) present as text. Prints one JSON object; exit 0 when
// every check passes, 1 when one fails, 77 when Chromium or playwright-core
// is missing.
//   node tools/report_check.js REPORT.html [--expect-file names.json]
//        [--screenshot out.png] [--width 1200] [--height H (the top H pixels only)]
'use strict';
const fs = require('fs');
const path = require('path');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const report = process.argv[2];
if (!report || !fs.existsSync(report)) {
  console.error('usage: report_check.js REPORT.html [--expect-file names.json] [--screenshot out.png]');
  process.exit(2);
}
let playwright;
try {
  playwright = require('playwright-core');
} catch (e) {
  console.log(JSON.stringify({skipped: 'playwright-core is not installed (scripts/setup installs tools/node_modules)'}));
  process.exit(77);
}
const executablePath = process.env.CHROMIUM || ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(fs.existsSync);
if (!executablePath) {
  console.log(JSON.stringify({skipped: 'Chromium is not installed (scripts/setup installs Debian\'s chromium)'}));
  process.exit(77);
}
const expected = arg('--expect-file') ? JSON.parse(fs.readFileSync(arg('--expect-file'), 'utf8')) : [];
const screenshot = arg('--screenshot');
const width = Number(arg('--width', '1200'));
const height = arg('--height') ? Number(arg('--height')) : 0;

(async () => {
  const browser = await playwright.chromium.launch({executablePath, headless: true,
                                                    args: ['--no-sandbox', '--disable-gpu']});
  const page = await browser.newPage({viewport: {width, height: 900}});
  const url = 'file://' + path.resolve(report);
  const outside = [], consoleErrors = [], pageErrors = [], dialogs = [];
  page.on('request', (r) => {
    const u = r.url();
    const self = r.isNavigationRequest() && r.frame() === page.mainFrame() && decodeURIComponent(u) === url;
    if (!self && !u.startsWith('data:') && !u.startsWith('blob:')) outside.push(u);
  });
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  const started = Date.now();
  await page.goto(url, {waitUntil: 'load'});
  let rendered = null;
  try {
    await page.waitForSelector('body[data-rendered]', {timeout: 60000});
    rendered = await page.getAttribute('body', 'data-rendered');
  } catch (e) {
    rendered = 'timeout';
  }
  const renderMs = Date.now() - started;
  const plots = await page.$$eval('div.plot', (divs) => divs.map((d) => {
    const svg = d.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const marks = svg ? svg.querySelectorAll('g.mark-symbol path, g.mark-rect path, g.mark-line path, ' +
                                             'g.mark-rule line, g.mark-text text, g.mark-tick path').length : 0;
    return {id: d.id, width: box.width, height: box.height, marks};
  }));
  const text = await page.evaluate(() => document.body.innerText);
  const missingTexts = expected.filter((t) => !text.includes(t));
  const injected = await page.evaluate(() => window.__autoprec_injected === true);
  if (screenshot) {
    await page.screenshot(height ? {path: screenshot, fullPage: true, clip: {x: 0, y: 0, width, height}}
                                 : {path: screenshot, fullPage: true});
  }
  await browser.close();
  const emptyPlots = plots.filter((p) => !(p.width > 0 && p.height > 0 && p.marks > 0)).map((p) => p.id);
  const result = {
    report, rendered, render_ms: renderMs, plots: plots.length, empty_plots: emptyPlots,
    outside_requests: outside, console_errors: consoleErrors, page_errors: pageErrors, dialogs,
    injected, missing_texts: missingTexts,
  };
  result.passed = rendered === String(plots.length) && plots.length > 0 && emptyPlots.length === 0 &&
                  outside.length === 0 && consoleErrors.length === 0 && pageErrors.length === 0 &&
                  dialogs.length === 0 && !injected && missingTexts.length === 0;
  console.log(JSON.stringify(result));
  process.exit(result.passed ? 0 : 1);
})().catch((e) => {
  console.log(JSON.stringify({passed: false, error: String(e)}));
  process.exit(1);
});
