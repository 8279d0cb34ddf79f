// The browser test of a report: opens DIR/report/index.html from file:// in headless Chromium and writes a JSON
// verdict that tests/integration/report_test.cpp asserts on, plus the screenshots it took.
//   problems: console errors, page errors and failed requests while loading
//   charts:   per chart, the pixel variance of its screenshot (blank = 0)
//   viewers:  per case viewer and attention viewer, the pixel variance of its canvas screenshot
//   table:    every cell of the results table: model, column key, data-value (as written in results.csv), text shown
//   toggle:   a case viewer's mean absolute pixel difference before and after switching an overlay off
// Usage: node check_report.cjs --page index.html --out folder (verdict.json + *.png) [--chromium path]
'use strict';
const fs = require('fs');
const path = require('path');
const { launch, openReport, frames, parseArgs } = require('./browser.cjs');

// Decodes PNG screenshots in the page itself (a canvas can read a data: image) and returns pixel statistics.
async function pixelStats(page, png, other) {
  return page.evaluate(async (a, b) => {
    const load = async (b64) => {
      const img = new Image();
      img.src = 'data:image/png;base64,' + b64;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.width; c.height = img.height;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      return ctx.getImageData(0, 0, c.width, c.height).data;
    };
    const x = await load(a);
    let sum = 0, sum2 = 0, n = 0;
    for (let i = 0; i < x.length; i += 4) {
      const g = (x[i] + x[i + 1] + x[i + 2]) / 3;
      sum += g; sum2 += g * g; ++n;
    }
    const mean = sum / n;
    const out = { variance: sum2 / n - mean * mean, pixels: n };
    if (b) {
      const y = await load(b);
      let d = 0;
      for (let i = 0; i < Math.min(x.length, y.length); i += 4) d += Math.abs(x[i] - y[i]) + Math.abs(x[i + 1] - y[i + 1]) + Math.abs(x[i + 2] - y[i + 2]);
      out.mean_abs_difference = d / n / 3;
    }
    return out;
  }, png.toString('base64'), other ? other.toString('base64') : null);
}

async function shoot(page, selector, file) {
  const handle = await page.$(selector);
  if (!handle) throw new Error('no element ' + selector);
  await handle.scrollIntoView();
  await frames(page);
  const png = await handle.screenshot({ path: file });
  return Buffer.from(png);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!args.page || !args.out) throw new Error('usage: check_report.cjs --page index.html --out folder [--chromium path]');
  fs.mkdirSync(args.out, { recursive: true });
  const t0 = Date.now();
  const { browser, close } = await launch(args.chromium);
  const verdict = { charts: {}, viewers: {}, table: [], toggle: null, screenshots: [] };
  try {
    const { page, problems } = await openReport(browser, args.page);
    verdict.problems = problems;
    await page.screenshot({ path: path.join(args.out, 'page.png'), fullPage: true });
    verdict.screenshots.push('page.png');
    for (const id of await page.evaluate(() => window.tfReport.chartIds())) {
      const png = await shoot(page, '#' + id, path.join(args.out, id + '.png'));
      verdict.charts[id] = await pixelStats(page, png);
      verdict.screenshots.push(id + '.png');
    }
    verdict.expected_charts = await page.evaluate(() => Array.from(document.querySelectorAll('.chart')).filter((e) => !e.querySelector('.empty')).map((e) => e.id));
    verdict.table = await page.evaluate(() => Array.from(document.querySelectorAll('#results-tbl tbody tr')).flatMap((tr) =>
      Array.from(tr.querySelectorAll('td')).map((td) => ({ model: tr.getAttribute('data-model'), key: td.getAttribute('data-key'),
        source: td.getAttribute('data-source'), value: td.getAttribute('data-value'), text: (td.querySelector('.num') || td).textContent }))));
    // Every case viewer (opening one may close the oldest: the page keeps within Chromium's WebGL context budget).
    const n = await page.evaluate(() => window.tfReport.caseCount());
    verdict.cases = n;
    for (let i = 0; i < n; ++i) {
      const id = await page.evaluate((k) => window.tfReport.openCase(k), i);
      const png = await shoot(page, 'canvas[data-viewer="' + id + '"]', path.join(args.out, id + '.png'));
      verdict.viewers[id] = await pixelStats(page, png);
      verdict.screenshots.push(id + '.png');
    }
    for (const id of await page.evaluate(() => window.tfReport.viewerIds().filter((v) => v.startsWith('attention-')))) {
      const png = await shoot(page, 'canvas[data-viewer="' + id + '"]', path.join(args.out, id + '.png'));
      verdict.viewers[id] = await pixelStats(page, png);
    }
    verdict.attention_viewers = Object.keys(verdict.viewers).filter((v) => v.startsWith('attention-')).length;
    const attention = await page.$('#attention .attention-grid');
    if (attention) {
      await shoot(page, '#attention .attention-grid', path.join(args.out, 'attention.png'));
      verdict.screenshots.push('attention.png');
    }
    // Toggle the ground truth of the first case off: the canvas must change.
    if (n > 0) {
      const id = await page.evaluate(() => window.tfReport.openCase(0));
      const layer = await page.evaluate((v) => (window.tfReport.layers(v).find((l) => l.kind === 'label' && l.visible) || {}).name, id);
      if (layer) {
        const selector = 'canvas[data-viewer="' + id + '"]';
        const before = await shoot(page, selector, path.join(args.out, 'toggle-before.png'));
        await page.click('#case-card-0 input[data-layer="' + layer + '"]');
        await frames(page);
        const after = await shoot(page, selector, path.join(args.out, 'toggle-after.png'));
        const stats = await pixelStats(page, before, after);
        verdict.toggle = { viewer: id, layer, mean_abs_difference: stats.mean_abs_difference };
        verdict.screenshots.push('toggle-before.png', 'toggle-after.png');
      }
    }
    verdict.page_errors = await page.evaluate(() => window.tfReport.errors);
  } finally {
    await close();
  }
  verdict.seconds = (Date.now() - t0) / 1000;
  fs.writeFileSync(path.join(args.out, 'verdict.json'), JSON.stringify(verdict, null, 1));
}

main().catch((e) => { console.error('check_report: ' + (e && e.stack ? e.stack : e)); process.exit(1); });
