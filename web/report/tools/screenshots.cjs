// The documentation's pictures of a report: the top of the page (table, accuracy against cost), one case viewer and
// the attention grid. Usage: node screenshots.cjs --page DIR/report/index.html --out docs/images
'use strict';
const fs = require('fs');
const path = require('path');
const { launch, openReport, frames, parseArgs } = require('./browser.cjs');

async function main() {
  const args = parseArgs(process.argv.slice(2));
  fs.mkdirSync(args.out, { recursive: true });
  const { browser, close } = await launch(args.chromium);
  try {
    const { page } = await openReport(browser, args.page, { width: 1400, height: 1000 });
    await page.screenshot({ path: path.join(args.out, 'report-demo.png') });
    const card = await page.$('#case-card-0');
    await card.scrollIntoView();
    await frames(page);
    await card.screenshot({ path: path.join(args.out, 'report-case.png') });
    const grid = await page.$('#attention .attention-grid');
    await grid.scrollIntoView();
    await frames(page);
    await grid.screenshot({ path: path.join(args.out, 'report-attention.png') });
  } finally {
    await close();
  }
}
main().catch((e) => { console.error('screenshots: ' + (e && e.message ? e.message : e)); process.exit(1); });
