// The report page: reads window.TF_REPORT (data/report.js, written by `teachformer report`), draws the charts with
// Vega-Lite (vega-embed) and the volumes with NiiVue. Volumes come from volumes/*.js scripts that set
// window.TF_VOLUMES[key] = {layer: base64 .nii.gz}; a <script> tag may load them from file://, fetch() may not.
// window.tfReport is the page's small API, used by the browser tests and the PNG export.
(function () {
  'use strict';
  const R = window.TF_REPORT;
  const errors = [];
  const charts = {};      // chart id -> vega View
  const viewers = {};     // viewer id -> {nv, layers, canvas}
  // Chromium keeps 16 WebGL contexts per page; case viewers beyond this budget close the oldest open case.
  const MAX_CONTEXTS = 15;
  // Model colours; greens are kept for the ground truth.
  const PALETTE = ['#4c78a8', '#f58518', '#e45756', '#b279a2', '#eeca3b', '#9d755d', '#72b7b2', '#ff9da6',
    '#bab0ac', '#1f77b4', '#d62728', '#8c6d31'];
  const GT_COLOR = '#00e05a';
  // Colour maps for fused overlays (PET, HBV, ADC, attention): transparent at cal_min, opaque at cal_max.
  const FUSION = {
    fusion_hot: { R: [0, 180, 255, 255, 255], G: [0, 0, 90, 200, 255], B: [0, 0, 0, 40, 220], A: [0, 0, 150, 220, 255], I: [0, 80, 150, 210, 255] },
    fusion_cool: { R: [0, 0, 40, 120, 220], G: [0, 60, 160, 230, 255], B: [0, 160, 255, 255, 255], A: [0, 0, 150, 220, 255], I: [0, 80, 150, 210, 255] },
    fusion_inferno: { R: [0, 87, 188, 249, 252], G: [0, 16, 55, 142, 255], B: [0, 110, 84, 8, 164], A: [0, 110, 180, 230, 255], I: [0, 64, 128, 192, 255] },
  };

  const el = (tag, attrs, children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    return e;
  };
  const fmt = (v, digits) => {
    if (v === null || v === undefined || v === '') return '–';
    const x = Number(v);
    if (!Number.isFinite(x)) return String(v);
    return digits >= 0 ? x.toFixed(digits) : String(v);
  };
  const modelNames = (R.models || []).map((m) => m.name);
  const roleOf = Object.fromEntries((R.models || []).map((m) => [m.name, m.role]));
  const colorOf = Object.fromEntries(modelNames.map((n, i) => [n, PALETTE[i % PALETTE.length]]));
  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

  // ---------- header and table ----------
  function renderHeader() {
    const e = R.experiment || {};
    const parts = [];
    parts.push(R.source.kind + ' ' + R.source.path);
    if (e.preset) parts.push('preset ' + e.preset);
    if (e.kind) parts.push(e.kind);
    if (e.protocol) parts.push('protocol ' + e.protocol);
    if (R.seeds && R.seeds.length && R.seeds[0] !== '') parts.push('seeds ' + R.seeds.join(', '));
    if (e.fold !== undefined) parts.push('fold ' + e.fold);
    if (R.cases_total) parts.push(R.cases_total + ' held-out case' + (R.cases_total === 1 ? '' : 's'));
    document.getElementById('subtitle').textContent = parts.join(' · ');
    document.getElementById('footer').innerHTML = '';
    document.getElementById('footer').appendChild(el('span', {
      text: 'Written by teachformer ' + R.tool_version + ' · works offline from the file system · libraries: '
    }));
    document.getElementById('footer').appendChild(el('a', { href: 'lib/NOTICE.txt', text: 'NiiVue, Vega, Vega-Lite, vega-embed' }));
  }

  function renderTable() {
    const t = R.table;
    const host = document.getElementById('results-table');
    if (!t || !t.rows || !t.rows.length) {
      host.appendChild(el('p', { class: 'empty', text: 'No results.' }));
      return;
    }
    const table = el('table', { class: 'results', id: 'results-tbl' });
    const head = el('tr');
    for (const c of t.columns) head.appendChild(el('th', { class: c.digits < 0 ? 'text' : '', text: c.label }));
    table.appendChild(el('thead', {}, [head]));
    const body = el('tbody');
    for (const r of t.rows) {
      const tr = el('tr', { class: r.role, 'data-model': r.model });
      for (const c of t.columns) {
        const cell = (r.cells || {})[c.key] || {};
        const td = el('td', { class: c.digits < 0 ? 'text' : '', 'data-key': c.key, 'data-source': c.source });
        if (cell.value !== null && cell.value !== undefined) td.setAttribute('data-value', cell.value);
        if (c.key === 'model' && colorOf[r.model]) td.appendChild(el('span', { class: 'swatch', style: 'background:' + colorOf[r.model] }));
        if (c.key === 'vs_student_alone') {
          if (cell.value !== null && cell.value !== undefined) {
            let text = (Number(cell.value) >= 0 ? '+' : '') + fmt(cell.value, 3);
            if (cell.ci_low !== null && cell.ci_low !== undefined) text += ' [' + fmt(cell.ci_low, 3) + ', ' + fmt(cell.ci_high, 3) + ']';
            if (cell.p !== null && cell.p !== undefined) text += ', p = ' + fmt(cell.p, 3);
            td.appendChild(document.createTextNode(text));
          } else td.appendChild(document.createTextNode('–'));
        } else {
          td.appendChild(el('span', { class: 'num', text: c.digits < 0 ? (cell.value || '–') : fmt(cell.value, c.digits) }));
          if (cell.spread) td.appendChild(el('span', { class: 'spread', text: '± ' + fmt(cell.spread, c.digits) }));
        }
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    table.appendChild(body);
    // Best Dice in bold.
    const dice = t.columns.find((c) => c.key === 'dice');
    if (dice) {
      const values = t.rows.map((r) => Number(((r.cells || {}).dice || {}).value));
      const best = Math.max(...values.filter(Number.isFinite));
      body.querySelectorAll('td[data-key="dice"]').forEach((td) => {
        if (Number(td.getAttribute('data-value')) === best) td.classList.add('best');
      });
    }
    host.appendChild(table);
    const note = [];
    if (R.source.kind === 'experiment') note.push('The numbers of results.csv (rounded here; hover a cell for the full value).');
    if (t.seeds && t.seeds.length > 1) note.push('± : standard deviation over ' + t.seeds.length + ' seeds.');
    document.getElementById('results-note').textContent = note.join(' ');
    table.querySelectorAll('td[data-value]').forEach((td) => { td.title = td.getAttribute('data-value'); });
  }

  // ---------- charts ----------
  const colorScale = () => ({ domain: modelNames, range: modelNames.map((n) => colorOf[n]) });
  const embedOptions = { actions: { export: true, source: false, compiled: false, editor: false }, renderer: 'canvas' };

  async function embed(id, spec, emptyText) {
    const host = document.getElementById(id);
    if (!spec) {
      host.appendChild(el('p', { class: 'empty', text: emptyText }));
      return;
    }
    spec.$schema = 'https://vega.github.io/schema/vega-lite/v6.json';
    spec.config = Object.assign({ font: 'system-ui, sans-serif', axis: { labelFontSize: 11, titleFontSize: 12 },
      legend: { labelFontSize: 11, titleFontSize: 12 }, view: { stroke: '#ccd' } }, spec.config || {});
    const result = await vegaEmbed(host, spec, embedOptions);
    charts[id] = result.view;
    host.setAttribute('data-drawn', '1');
  }

  function costSpec() {
    const data = (R.cost || []).filter((d) => d.dice !== null);
    if (!data.length) return null;
    const SHAPES = { teacher: 'square', student: 'circle' };
    const roles = [...new Set(data.map((d) => d.role))];
    const panel = (field, title) => ({
      width: 380, height: 300,
      layer: [
        {
          transform: [{ filter: 'datum.dice_sd !== null' }, { calculate: 'datum.dice - datum.dice_sd', as: 'lo' },
            { calculate: 'datum.dice + datum.dice_sd', as: 'hi' }],
          mark: { type: 'rule', strokeWidth: 1.5 },
          encoding: { x: { field, type: 'quantitative' }, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' },
            color: { field: 'model', type: 'nominal', scale: colorScale(), legend: null } },
        },
        {
          mark: { type: 'point', filled: true, opacity: 0.85, stroke: '#222', strokeWidth: 0.5 },
          encoding: {
            x: { field, type: 'quantitative', scale: { type: 'log', zero: false, padding: 24 }, title },
            y: { field: 'dice', type: 'quantitative', scale: { zero: false, padding: 20 }, title: 'mean Dice (held out)' },
            size: { field: 'parameters', type: 'quantitative', scale: { range: [60, 900] }, title: 'parameters',
              legend: { format: '.2s' } },
            shape: { field: 'role', type: 'nominal', scale: { domain: roles, range: roles.map((r) => SHAPES[r] || 'triangle') }, title: 'role' },
            color: { field: 'model', type: 'nominal', scale: colorScale(), title: 'model' },
            tooltip: [{ field: 'model' }, { field: 'role' }, { field: 'dice', format: '.3f' }, { field: 'gflops', format: '.3f', title: 'GFLOPs' },
              { field: 'seconds_per_case', format: '.3f', title: 'CPU s/case' }, { field: 'parameters', format: ',' }],
          },
        },
        {
          mark: { type: 'text', align: 'left', dx: 9, dy: -9, fontSize: 10, color: '#333' },
          encoding: { x: { field, type: 'quantitative' }, y: { field: 'dice', type: 'quantitative' }, text: { field: 'model' } },
        },
      ],
    });
    return { data: { values: data }, hconcat: [panel('gflops', 'GFLOPs per forward at the training patch (log)'),
      panel('seconds_per_case', 'CPU seconds per case (log)')], resolve: { scale: { size: 'shared', color: 'shared', y: 'shared' } } };
  }

  // A deterministic jitter per case so that the page looks the same on every load.
  function withJitter(rows) {
    const cases = [...new Set(rows.map((r) => r.case))].sort();
    const index = Object.fromEntries(cases.map((c, i) => [c, i]));
    return rows.map((r) => Object.assign({}, r, { jitter: ((index[r.case] * 0.618034 + (Number(r.seed) || 0) * 0.29) % 1) - 0.5 }));
  }

  function perCaseSpec() {
    const rows = withJitter((R.per_case || []).filter((r) => r.dice !== null));
    if (!rows.length) return null;
    const order = modelNames.filter((n) => rows.some((r) => r.model === n));
    const panel = (field, title) => ({
      width: 380, height: Math.max(120, 34 * order.length),
      transform: [{ filter: 'datum.' + field + ' !== null' }],
      layer: [
        { mark: { type: 'boxplot', extent: 'min-max', opacity: 0.35, size: 18, median: { color: '#222' } },
          encoding: { y: { field: 'model', type: 'nominal', sort: order, title: null }, x: { field, type: 'quantitative', title },
            color: { field: 'model', type: 'nominal', scale: colorScale(), legend: null } } },
        { mark: { type: 'point', filled: true, size: 34, opacity: 0.9, stroke: '#222', strokeWidth: 0.4 },
          encoding: { y: { field: 'model', type: 'nominal', sort: order }, yOffset: { field: 'jitter', type: 'quantitative', scale: { domain: [-1.4, 1.4] } },
            x: { field, type: 'quantitative' }, color: { field: 'model', type: 'nominal', scale: colorScale(), legend: null },
            tooltip: [{ field: 'case' }, { field: 'model' }, { field: 'seed' }, { field, format: '.3f' }] } },
      ],
    });
    const panels = [panel('dice', 'Dice per case')];
    if (rows.some((r) => r.hd95 !== null)) panels.push(panel('hd95', 'HD95 per case (mm)'));
    return { data: { values: rows }, hconcat: panels };
  }

  function pairedSpec() {
    const p = R.paired;
    if (!p || !p.rows || !p.rows.length) return null;
    const rows = withJitter(p.rows);
    const order = modelNames.filter((n) => rows.some((r) => r.model === n));
    return {
      width: 560, height: Math.max(100, 40 * order.length),
      layer: [
        { data: { values: [{ zero: 0 }] }, mark: { type: 'rule', color: '#888', strokeDash: [4, 3] }, encoding: { x: { field: 'zero', type: 'quantitative' } } },
        { data: { values: rows }, mark: { type: 'point', filled: true, size: 30, opacity: 0.75 },
          encoding: { y: { field: 'model', type: 'nominal', sort: order, title: null },
            yOffset: { field: 'jitter', type: 'quantitative', scale: { domain: [-1.4, 1.4] } },
            x: { field: 'diff', type: 'quantitative', title: 'Dice − Dice of ' + p.reference + ' (same case)' },
            color: { field: 'model', type: 'nominal', scale: colorScale(), legend: null },
            tooltip: [{ field: 'case' }, { field: 'model' }, { field: 'seed' }, { field: 'diff', format: '+.3f' }] } },
        { data: { values: p.summary }, mark: { type: 'rule', strokeWidth: 2.5, color: '#222' },
          encoding: { y: { field: 'model', type: 'nominal', sort: order }, x: { field: 'ci_low', type: 'quantitative' }, x2: { field: 'ci_high' } } },
        { data: { values: p.summary }, mark: { type: 'point', shape: 'diamond', filled: true, size: 110, color: '#222' },
          encoding: { y: { field: 'model', type: 'nominal', sort: order }, x: { field: 'mean', type: 'quantitative' },
            tooltip: [{ field: 'model' }, { field: 'mean', format: '+.4f', title: 'mean difference' }, { field: 'ci_low', format: '+.4f' },
              { field: 'ci_high', format: '+.4f' }, { field: 'n', title: 'pairs' }, { field: 'wilcoxon_p', format: '.4f', title: 'Wilcoxon p' }] } },
      ],
    };
  }

  function curvesSpec() {
    const c = R.curves || { points: [], stages: [] };
    if (!c.points.length) return null;
    const allPanels = ['loss', 'weight', 'validation Dice', 'learning rate'];
    const order = modelNames.filter((n) => c.points.some((d) => d.model === n));
    // One row per model with only the panels it has (teachers have no strategy weights); stages in every panel.
    const rows = c.points.map((d) => Object.assign({ kind: 'curve' }, d));
    const panelsOf = {};
    for (const m of order) panelsOf[m] = allPanels.filter((p) => c.points.some((d) => d.model === m && d.panel === p));
    for (const s of c.stages) for (const panel of panelsOf[s.model] || []) rows.push(Object.assign({ kind: 'stage', panel }, s));
    const layer = [
      { transform: [{ filter: "datum.kind === 'stage'" }], mark: { type: 'rect', opacity: 0.22 },
        encoding: { x: { field: 'x0', type: 'quantitative', title: 'epoch' }, x2: { field: 'x1' },
          fill: { field: 'stage', type: 'nominal', scale: { scheme: 'set2' }, legend: { title: 'stage' } },
          tooltip: [{ field: 'stage' }, { field: 'x0', title: 'from epoch' }, { field: 'x1', title: 'to epoch' }] } },
      { transform: [{ filter: "datum.kind === 'curve'" }], mark: { type: 'line', strokeWidth: 1.4 },
        encoding: { x: { field: 'x', type: 'quantitative', title: 'epoch' }, y: { field: 'y', type: 'quantitative', title: null, scale: { zero: false } },
          color: { field: 'series', type: 'nominal', scale: { scheme: 'tableau20' }, legend: { title: 'series', columns: 2 } },
          detail: { field: 'seed', type: 'nominal' },
          tooltip: [{ field: 'model' }, { field: 'series' }, { field: 'seed' }, { field: 'x', format: '.2f', title: 'epoch' }, { field: 'y', format: '.4g' }] } },
    ];
    return {
      data: { values: rows },
      vconcat: order.map((m) => ({
        title: { text: m, anchor: 'start', fontSize: 13 },
        transform: [{ filter: { field: 'model', equal: m } }],
        facet: { column: { field: 'panel', type: 'nominal', sort: panelsOf[m], header: { title: null, labelFontSize: 12 } } },
        spec: { width: 230, height: 110, layer },
        resolve: { scale: { y: 'independent', x: 'independent' } },
      })),
      spacing: 18,
    };
  }

  // ---------- viewers ----------
  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = el('script', { src });
      s.onload = () => resolve();
      s.onerror = () => reject(new Error('cannot load ' + src));
      document.head.appendChild(s);
    });
  }
  const volumeCache = {};
  function volumesFor(key, src) {
    if (!volumeCache[key]) volumeCache[key] = loadScript(src).then(() => window.TF_VOLUMES[key]);
    return volumeCache[key];
  }
  const colormapsAdded = new Set();
  function labelColormap(nv, name, hex) {
    const key = 'tf_' + name.replace(/[^A-Za-z0-9_]/g, '_');
    const [r, g, b] = rgb(hex);
    nv.addColormap(key, { R: [0, r], G: [0, g], B: [0, b], A: [0, 255], I: [0, 255] });
    colormapsAdded.add(key);
    return key;
  }
  const safeName = (s) => s.replace(/[^A-Za-z0-9_.-]/g, '_') + '.nii.gz';
  const nextFrame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));

  async function createViewer(id, canvas, layers, volumes, opts) {
    const nv = new niivue.Niivue({
      backColor: [0, 0, 0, 1], show3Dcrosshair: false, crosshairColor: [0.25, 0.75, 1, 0.9], crosshairWidth: 1,
      isColorbar: false, logLevel: 'error', loadingText: '', multiplanarShowRender: 0, multiplanarLayout: opts.layout || 3,
      isOrientationTextVisible: true, textHeight: 0.045,
    });
    await nv.attachToCanvas(canvas);
    const images = [];
    for (const layer of layers) {
      const b64 = volumes[layer.volume || layer.name];
      if (!b64) continue;
      let colormap = layer.colormap || 'gray';
      if (FUSION[colormap]) nv.addColormap(colormap, FUSION[colormap]);
      if (layer.kind === 'label') colormap = labelColormap(nv, layer.name, layer.model ? colorOf[layer.model] : GT_COLOR);
      const img = await niivue.NVImage.loadFromBase64({ base64: b64, name: safeName(layer.name) });
      img.colormap = colormap;
      if (layer.kind === 'label') { img.cal_min = 0; img.cal_max = 1; } else if (layer.cal_min !== undefined) { img.cal_min = layer.cal_min; img.cal_max = layer.cal_max; }
      // Colour overlays: voxels below cal_min are transparent (NiiVue's COLORMAP_TYPE.ZERO_TO_MAX_TRANSPARENT_BELOW_MIN).
      if (layer.kind === 'image' && images.length > 0) img.colormapType = 1;
      img.opacity = layer.visible === false ? 0 : (layer.opacity === undefined ? 1 : layer.opacity);
      nv.addVolume(img);
      images.push({ layer, img });
    }
    nv.setSliceType(opts.sliceType === undefined ? nv.sliceTypeMultiplanar : opts.sliceType);
    if (opts.crosshair) nv.scene.crosshairPos = nv.mm2frac(opts.crosshair);
    nv.updateGLVolume();
    nv.drawScene();
    viewers[id] = { nv, images, canvas };
    canvas.setAttribute('data-viewer', id);
    await nextFrame();
    return viewers[id];
  }
  function destroyViewer(id) {
    const v = viewers[id];
    if (!v) return;
    const ext = v.nv.gl && v.nv.gl.getExtension('WEBGL_lose_context');
    if (ext) ext.loseContext();
    const fresh = el('canvas');
    v.canvas.replaceWith(fresh);
    delete viewers[id];
  }
  async function setLayer(id, name, visible) {
    const v = viewers[id];
    if (!v) throw new Error('no viewer ' + id);
    const entry = v.images.find((x) => x.layer.name === name);
    if (!entry) throw new Error('viewer ' + id + ' has no layer ' + name);
    entry.layer.visible = visible;
    entry.img.opacity = visible ? (entry.layer.opacity === undefined ? 1 : entry.layer.opacity) : 0;
    v.nv.updateGLVolume();
    v.nv.drawScene();
    await nextFrame();
  }

  // ---------- the scans ----------
  const openOrder = [];   // case viewer ids, oldest first
  const pending = {};     // case viewer id -> promise of its creation
  let attentionContexts = 0;
  const caseViewerId = (i) => 'case-' + i;

  function renderCases() {
    const host = document.getElementById('cases');
    const cases = R.cases || [];
    const note = document.getElementById('scans-note');
    const scanText = R.modality === 'petct' ? 'CT with PET as a fused colour overlay' :
      (R.modality === 'mri' ? 'T2W with HBV (and ADC) as colour overlays' : 'the scan');
    note.textContent = cases.length ? 'One viewer per held-out case, worst first (by the mean Dice of the models): ' + scanText +
      ', the ground truth (green) and each model\'s prediction as overlays you switch on and off. Axial, coronal and sagittal ' +
      'views share one crosshair (click or drag to move it; scroll to change slice).' +
      (R.cases_total > cases.length ? ' Viewers for the ' + cases.length + ' worst of ' + R.cases_total + ' cases (teachformer report --max-cases).' : '')
      : 'No held-out case with volumes.';
    cases.forEach((c, i) => {
      const details = el('details', { class: 'case', id: 'case-card-' + i, 'data-case': c.id });
      const dice = modelNames.filter((m) => (c.dice || {})[m] !== undefined).map((m) => m + ' ' + fmt(c.dice[m], 3)).join(' · ');
      details.appendChild(el('summary', {}, ['#' + c.rank + ' ' + c.id, el('span', { class: 'dice', text: (c.mean_dice !== null ? 'mean Dice ' + fmt(c.mean_dice, 3) + ' — ' : '') + dice })]));
      const viewerBox = el('div', { class: 'viewer' }, [el('canvas', { id: 'canvas-case-' + i }), el('span', { class: 'status', text: '' })]);
      const layers = el('div', { class: 'layers' });
      let group = '';
      for (const layer of c.layers) {
        const g = layer.kind === 'image' ? 'scan' : 'segmentations';
        if (g !== group) { layers.appendChild(el('div', { class: 'group', text: g })); group = g; }
        const box = el('input', { type: 'checkbox', 'data-layer': layer.name });
        box.checked = layer.visible !== false;
        if (layer.kind === 'image' && layer === c.layers[0]) box.disabled = true;
        box.addEventListener('change', () => setLayer(caseViewerId(i), layer.name, box.checked).catch(report));
        const swatchColor = layer.kind === 'label' ? (layer.model ? colorOf[layer.model] : GT_COLOR) : null;
        layers.appendChild(el('label', {}, [box, swatchColor ? el('span', { class: 'swatch', style: 'background:' + swatchColor }) : '', layer.name]));
      }
      details.appendChild(el('div', { class: 'case-body' }, [viewerBox, layers]));
      details.addEventListener('toggle', () => {
        if (details.open) openCase(i).catch(report);
        else closeCase(i);
      });
      host.appendChild(details);
    });
  }

  async function openCase(i) {
    const c = R.cases[i];
    const id = caseViewerId(i);
    const details = document.getElementById('case-card-' + i);
    if (!details.open) details.open = true;  // fires toggle, which calls back here
    if (viewers[id]) return id;
    if (pending[id]) return pending[id];
    pending[id] = (async () => {
      const budget = Math.max(1, MAX_CONTEXTS - attentionContexts);
      while (openOrder.length >= budget) {
        const oldest = openOrder.shift();
        const idx = Number(oldest.slice(5));
        document.getElementById('case-card-' + idx).open = false;
        destroyViewer(oldest);
      }
      openOrder.push(id);
      const status = details.querySelector('.status');
      status.textContent = 'loading…';
      const volumes = await volumesFor(c.id, c.script);
      // Checkbox states may have changed while closed.
      details.querySelectorAll('input[data-layer]').forEach((box) => {
        const layer = c.layers.find((l) => l.name === box.getAttribute('data-layer'));
        if (layer) layer.visible = box.checked;
      });
      const canvas = details.querySelector('canvas');
      await createViewer(id, canvas, c.layers, volumes, { crosshair: c.crosshair });
      status.textContent = '';
      return id;
    })();
    try { return await pending[id]; } finally { delete pending[id]; }
  }
  function closeCase(i) {
    const id = caseViewerId(i);
    const k = openOrder.indexOf(id);
    if (k >= 0) openOrder.splice(k, 1);
    destroyViewer(id);
  }

  // ---------- the distillation ----------
  function attentionColumns(a) {
    const teachers = a.models.filter((m) => m.role === 'teacher');
    const students = a.models.filter((m) => m.role === 'student');
    const alone = students.find((m) => m.name === 'student:student_alone');
    const distilled = students.filter((m) => m !== alone);
    if (!teachers.length && !students.length) return { columns: a.models.slice(0, 6), distilled: [] };
    const cols = teachers.slice();
    if (distilled.length) cols.push(distilled[0]);
    if (alone) cols.push(alone);
    return { columns: cols, distilled };
  }

  async function renderAttention() {
    const a = R.attention;
    const host = document.getElementById('attention');
    const note = document.getElementById('attention-note');
    if (!a) {
      note.textContent = 'No attention maps: they need the model folders and a held-out case with its scan.';
      return;
    }
    note.textContent = 'Case ' + a.case + ': the attention maps the student is distilled on, Q(F) = mean over channels of |F|^' + a.p +
      ', of the deepest encoder stage (coarse, encoder_coarse) and of the last decoder stage but one (fine, decoder_fine), ' +
      'each scaled to its maximum, over the ' + (a.background.channel || 'scan') + '. Each teacher beside the students, distilled and trained alone. ' +
      'The viewers share one crosshair: click in any of them.';
    const { columns, distilled } = attentionColumns(a);
    const controls = el('div', { class: 'attention-controls' });
    const show = el('input', { type: 'checkbox', id: 'attention-show' });
    show.checked = true;
    controls.appendChild(el('label', {}, [show, ' show the maps']));
    let select = null;
    if (distilled.length > 1) {
      select = el('select', { id: 'attention-student' });
      for (const m of distilled) select.appendChild(el('option', { value: m.name, text: m.name }));
      controls.appendChild(el('label', { style: 'margin-left:18px' }, ['distilled student:', select]));
    }
    host.appendChild(controls);
    const grid = el('div', { class: 'attention-grid', style: 'grid-template-columns: 22px repeat(' + columns.length + ', minmax(150px, 1fr))' });
    grid.appendChild(el('div'));
    const heads = columns.map((m) => {
      const h = el('div', { class: 'head' }, [el('span', { class: 'swatch', style: 'background:' + (colorOf[m.name] || '#888') }), m.name + ' (' + m.role + ')']);
      grid.appendChild(h);
      return h;
    });
    const volumes = await volumesFor('attention', a.script);
    const created = [];
    for (const level of ['coarse', 'fine']) {
      grid.appendChild(el('div', { class: 'rowhead', text: level }));
      for (let k = 0; k < columns.length; ++k) {
        const box = el('div', { class: 'viewer' }, [el('canvas', { id: 'canvas-attention-' + level + '-' + k })]);
        grid.appendChild(box);
        created.push({ level, k, box });
      }
    }
    host.appendChild(grid);
    attentionContexts = created.length;
    const nvs = [];
    for (const { level, k, box } of created) {
      const m = columns[k];
      const id = 'attention-' + level + '-' + k;
      const layers = [Object.assign({}, a.background, { volume: 'background' }),
        { name: 'map', volume: m[level], kind: 'image', colormap: 'fusion_inferno', cal_min: 25, cal_max: 255, opacity: 0.85, visible: true }];
      const v = await createViewer(id, box.querySelector('canvas'), layers, volumes, { crosshair: a.crosshair, sliceType: 0 });
      v.model = m.name;
      v.level = level;
      nvs.push(v.nv);
    }
    // Linked crosshairs: every viewer drives all the others.
    for (const nv of nvs) nv.broadcastTo(nvs.filter((o) => o !== nv), { '2d': true, '3d': true });
    show.addEventListener('change', () => {
      Promise.all(created.map(({ level, k }) => setLayer('attention-' + level + '-' + k, 'map', show.checked))).catch(report);
    });
    if (select) {
      const col = columns.indexOf(distilled[0]);
      select.addEventListener('change', async () => {
        const m = distilled.find((d) => d.name === select.value);
        heads[col].lastChild.textContent = m.name + ' (' + m.role + ')';
        heads[col].firstChild.style.background = colorOf[m.name];
        for (const level of ['coarse', 'fine']) {
          const id = 'attention-' + level + '-' + col;
          const v = viewers[id];
          const entry = v.images.find((x) => x.layer.name === 'map');
          v.nv.removeVolume(entry.img);
          const img = await niivue.NVImage.loadFromBase64({ base64: volumes[m[level]], name: safeName(m[level]) });
          img.colormap = 'fusion_inferno'; img.cal_min = 25; img.cal_max = 255; img.opacity = show.checked ? 0.85 : 0;
          v.nv.addVolume(img);
          entry.img = img;
          v.model = m.name;
          v.nv.drawScene();
        }
      });
    }
  }

  function report(e) {
    errors.push(String(e && e.stack ? e.stack : e));
    console.error(e);
  }

  // ---------- start ----------
  window.tfReport = {
    errors,
    charts,
    viewers,
    chartIds: () => ['chart-cost', 'chart-per-case', 'chart-paired', 'chart-curves'].filter((id) => charts[id]),
    viewerIds: () => Object.keys(viewers),
    caseCount: () => (R.cases || []).length,
    openCase: (i) => openCase(i),
    setLayer,
    layers: (id) => viewers[id].images.map((x) => ({ name: x.layer.name, kind: x.layer.kind, visible: x.layer.visible !== false })),
    chartPng: async (id, scale) => charts[id].toImageURL('png', scale || 2),
    // One axial slice through the crosshair (the lesion's centre), for the PNG export.
    axial: async (id, size) => {
      const v = viewers[id];
      const box = v.canvas.parentElement;
      box.style.flex = 'none';
      box.style.width = box.style.height = (size || 560) + 'px';
      v.nv.setSliceType(v.nv.sliceTypeAxial);
      v.nv.resizeListener();
      v.nv.drawScene();
      await nextFrame();
    },
  };
  window.tfReport.ready = (async () => {
    renderHeader();
    renderTable();
    await embed('chart-cost', costSpec(), 'No cost data (only an experiment has it).');
    await embed('chart-per-case', perCaseSpec(), 'No per-case results.');
    const paired = pairedSpec();
    if (!paired) document.getElementById('paired-note').textContent = 'No paired comparison: the experiment has no student trained alone with per-case results.';
    await embed('chart-paired', paired, '');
    await embed('chart-curves', curvesSpec(), 'No training log.');
    renderCases();
    await renderAttention();
    const first = Math.min(3, (R.cases || []).length);
    for (let i = 0; i < first; ++i) await openCase(i);
    document.body.setAttribute('data-ready', '1');
  })().catch((e) => { report(e); document.body.setAttribute('data-ready', 'error'); });
})();
