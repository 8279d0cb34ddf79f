// `teachformer report --png`: opens the report in headless Chromium and writes every chart (Vega's own PNG renderer,
// 2x) and one axial overlay slice per case viewer (a screenshot of its canvas) as PNG files.
// Usage: node export_png.cjs --page DIR/report/index.html --out DIR/report/png [--chromium /usr/bin/chromium]
'use strict';
const fs = require('fs');
const path = require('path');
const { launch, openReport, frames, parseArgs } = require('./browser.cjs');

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!args.page || !args.out) throw new Error('usage: export_png.cjs --page index.html --out folder [--chromium path]');
  fs.mkdirSync(args.out, { recursive: true });
  const { browser, close } = await launch(args.chromium);
  try {
    const { page, problems } = await openReport(browser, args.page);
    const bad = [...problems.console, ...problems.page, ...problems.requests];
    if (bad.length) throw new Error('the page reported problems: ' + bad.join('; '));
    const written = [];
    for (const id of await page.evaluate(() => window.tfReport.chartIds())) {
      const dataUrl = await page.evaluate((i) => window.tfReport.chartPng(i, 2), id);
      const file = path.join(args.out, id.replace(/^chart-/, '') + '.png');
      fs.writeFileSync(file, Buffer.from(dataUrl.split(',')[1], 'base64'));
      written.push(file);
    }
    const n = await page.evaluate(() => window.tfReport.caseCount());
    for (let i = 0; i < n; ++i) {
      const id = await page.evaluate((k) => window.tfReport.openCase(k), i);
      await page.evaluate((v) => window.tfReport.axial(v), id);
      await frames(page);
      const caseId = await page.evaluate((k) => window.TF_REPORT.cases[k].id, i);
      const file = path.join(args.out, 'case_' + String(i + 1).padStart(2, '0') + '_' + caseId.replace(/[^A-Za-z0-9_.-]/g, '_') + '.png');
      const canvas = await page.$('canvas[data-viewer="' + id + '"]');
      await canvas.scrollIntoView();
      await canvas.screenshot({ path: file });
      written.push(file);
    }
    const attention = await page.$('#attention .attention-grid');
    if (attention) {
      await attention.scrollIntoView();
      await frames(page);
      const file = path.join(args.out, 'attention.png');
      await attention.screenshot({ path: file });
      written.push(file);
    }
    for (const f of written) console.log(f);
  } finally {
    await close();
  }
}

main().catch((e) => { console.error('export_png: ' + (e && e.message ? e.message : e)); process.exit(1); });
