// Headless Chromium for the report: launch with the flags the tests and --png use, open a report page from file://
// and collect what goes wrong (console errors, page errors, failed requests). Used by export_png.cjs and
// check_report.cjs.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const url = require('url');

function loadPuppeteer() {
  try {
    return require('puppeteer-core');
  } catch (e) {
    throw new Error('puppeteer-core is not installed in ' + path.dirname(__dirname) + '; run `bash scripts/install_deps.sh`');
  }
}

function findChromium(explicit) {
  const candidates = [explicit, process.env.TEACHFORMER_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  throw new Error('Chromium is not installed (looked for /usr/bin/chromium); run `bash scripts/install_deps.sh` (apt package chromium)');
}

async function launch(chromium) {
  const puppeteer = loadPuppeteer();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-report-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: findChromium(chromium),
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--enable-unsafe-swiftshader', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--user-data-dir=' + profile],
  });
  const close = async () => {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { browser, close };
}

// Opens the page and waits until it says it is ready; returns {page, problems}.
async function openReport(browser, indexHtml, viewport) {
  const page = await browser.newPage();
  await page.setViewport(viewport || { width: 1500, height: 1000 });
  const problems = { console: [], page: [], requests: [] };
  page.on('console', (m) => { if (m.type() === 'error') problems.console.push(m.text()); });
  page.on('pageerror', (e) => problems.page.push(String(e && e.message ? e.message : e)));
  page.on('requestfailed', (r) => problems.requests.push(r.url() + ' (' + (r.failure() ? r.failure().errorText : '?') + ')'));
  page.on('response', (r) => { if (r.status() >= 400) problems.requests.push(r.url() + ' (HTTP ' + r.status() + ')'); });
  await page.goto(url.pathToFileURL(path.resolve(indexHtml)).href, { waitUntil: 'load' });
  await page.waitForFunction(() => document.body.getAttribute('data-ready'), { timeout: 120000 });
  const ready = await page.evaluate(() => document.body.getAttribute('data-ready'));
  if (ready !== '1') {
    const errs = await page.evaluate(() => (window.tfReport ? window.tfReport.errors : ['no tfReport']));
    problems.page.push('page not ready: ' + errs.join('; '));
  }
  return { page, problems };
}

const frames = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; ++i) {
    if (!argv[i].startsWith('--')) throw new Error('unexpected argument ' + argv[i]);
    out[argv[i].slice(2)] = argv[i + 1];
    ++i;
  }
  return out;
}

module.exports = { launch, openReport, frames, parseArgs };
