// A detection model's deployment tried in Debian's chromium with playwright-core as a person
// would: sign in, open the deployment from the list, drop an image on "try it", read the boxes
// drawn over it (with their labels and scores), the count per class, the latency and the curl
// command (copied to the clipboard); then in Chinese, the image chosen with the button. Then
// pre-annotation with the deployed detector: on a det set's annotation page, choose it, set the
// score threshold, run the job and see its summary; in the workspace, the proposals listed
// with their scores, one confirmed with Y, one deleted, the image submitted with Ctrl+Enter;
// back on the set, the summary counts them. Run by tests/integration/test_e2e_detection.py
// (which trains, uploads and deploys the detector, and makes the set to pre-annotate):
//   node tests/e2e/detection.mjs CONFIG.json
// Prints one "step ..." line per step, then "RESULT {json}" (what the page showed, compared
// there with the server's own answer); exits non-zero on the first failure (with a screenshot).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { loadConfig, log, expect, launch, openPage, signIn, screenshot, waitPreJob, main } from './lib.mjs';

const cfg = loadConfig();
const result = {};

const browser = await launch(cfg);
const pageErrors = [];
const page = await openPage(browser, pageErrors, {
  timeout: 10000,
  context: { permissions: ['clipboard-read', 'clipboard-write'] },
});
page.on('dialog', (d) => {
  pageErrors.push('unexpected browser dialog: ' + d.message());
  d.dismiss();
});

const A11Y = { skip: ['try-input'] }; // the hidden file input, opened by "Choose an image"
const shot = (name) => screenshot(page, cfg.shots, name, { fullPage: true, settle: 200, a11y: A11Y, pointer: [1350, 850] });
const predicted = () => page.waitForResponse((r) => r.url().includes(`/api/v1/deployments/${cfg.deployment}/predict`) &&
  r.request().method() === 'POST', { timeout: 30000 });

// What "try it" shows: the boxes drawn over the image (label and score as written beside each,
// the coordinates in the image's pixels, where they land on the screen), the counts per class,
// the total, the latency line.
async function shown() {
  return page.evaluate(() => {
    const svg = document.querySelector('.try-frame svg.try-boxes');
    const img = document.querySelector('.try-frame img.try-img');
    if (!svg || !img) return null;
    const [, , vw, vh] = svg.getAttribute('viewBox').split(/\s+/).map(Number);
    const rects = [...svg.querySelectorAll('rect')];
    const texts = [...svg.querySelectorAll('text')];
    // where the image's pixels are on the screen (object-fit: contain)
    const ir = img.getBoundingClientRect();
    const s = Math.min(ir.width / img.naturalWidth, ir.height / img.naturalHeight);
    const ox = ir.left + (ir.width - img.naturalWidth * s) / 2, oy = ir.top + (ir.height - img.naturalHeight * s) / 2;
    const boxes = rects.map((r, i) => {
      const t = texts[i] ? texts[i].textContent.trim() : '';
      const m = /^(.*\S)\s+(\d+)%$/.exec(t) || [];
      const b = ['x', 'y', 'width', 'height'].map((k) => Number(r.getAttribute(k)));
      const sr = r.getBoundingClientRect();
      const tb = texts[i] ? texts[i].getBBox() : null; // the label, in the image's pixels
      const want = [ox + b[0] * s, oy + b[1] * s, b[2] * s, b[3] * s];
      return {
        text: t, label: m[1] || null, score: m[2] !== undefined ? Number(m[2]) : null,
        box: [b[0], b[1], b[0] + b[2], b[1] + b[3]],
        stroke: getComputedStyle(r).stroke, fill: texts[i] ? getComputedStyle(texts[i]).fill : null,
        label_box: tb ? [tb.x, tb.y, tb.x + tb.width, tb.y + tb.height] : null,
        font: texts[i] ? Number(texts[i].getAttribute('font-size')) : null,
        misplaced: Math.max(...[sr.left, sr.top, sr.width, sr.height].map((v, k) => Math.abs(v - want[k]))),
      };
    });
    const counts = Object.fromEntries([...document.querySelectorAll('#predictions .pred-row[data-label]')].map((row) =>
      [row.dataset.label, Number(row.querySelector('.pred-score').textContent.trim())]));
    const swatches = Object.fromEntries([...document.querySelectorAll('#predictions .pred-row[data-label]')].map((row) =>
      [row.dataset.label, getComputedStyle(row.querySelector('.swatch')).backgroundColor]));
    const total = document.querySelector('#det-total');
    const lat = [...document.querySelectorAll('#predictions .muted.small')].map((e) => e.textContent.trim());
    return { view: [vw, vh], natural: [img.naturalWidth, img.naturalHeight], boxes, counts, swatches, total: total ? total.textContent.trim() : null, latency: lat };
  });
}

// the hue (0-360) of a computed color "rgb(r, g, b)"
function hue(css) {
  const [r, g, b] = (css.match(/[\d.]+/g) || []).slice(0, 3).map((v) => Number(v) / 255);
  const max = Math.max(r, g, b), d = max - Math.min(r, g, b);
  if (!d) return 0;
  const h = max === r ? ((g - b) / d) % 6 : max === g ? (b - r) / d + 2 : (r - g) / d + 4;
  return Math.round((h * 60 + 360) % 360);
}

// The checks on what is shown, in either language; returns what goes into RESULT.
function check(s, lang, { objects, latency, version = 1 }) {
  expect(s, `${lang}: no image or no boxes drawn`);
  expect(s.view[0] === s.natural[0] && s.view[1] === s.natural[1], `${lang}: the boxes are drawn in ${s.view} but the image is ${s.natural}`);
  expect(s.boxes.length > 0, `${lang}: no box drawn`);
  for (const b of s.boxes) {
    expect(b.label && cfg.classes.includes(b.label), `${lang}: a box's label is not a class of the model: "${b.text}"`);
    expect(b.score > 0 && b.score <= 100, `${lang}: a box's score: "${b.text}"`);
    expect(b.box[0] >= 0 && b.box[1] >= 0 && b.box[2] <= s.view[0] && b.box[3] <= s.view[1] && b.box[0] < b.box[2] && b.box[1] < b.box[3],
      `${lang}: a box outside the image: ${b.box}`);
    expect(b.misplaced < 2, `${lang}: the box of "${b.text}" is drawn ${b.misplaced.toFixed(1)} px away from where its pixels are on the screen`);
    expect(b.stroke === b.fill && b.stroke === s.swatches[b.label], `${lang}: "${b.text}": box ${b.stroke}, label ${b.fill}, count ${s.swatches[b.label]} differ in color`);
    // the label stays on the picture, above its box or inside it at the top edge
    expect(b.label_box && b.label_box[1] >= -0.1 * b.font && b.label_box[3] <= b.box[3] + 0.3 * b.font &&
      b.label_box[0] >= -0.1 * b.font && b.label_box[2] <= s.view[0] + 0.1 * b.font,
      `${lang}: the label "${b.text}" (${b.label_box}) is cut off or away from its box ${b.box}`);
  }
  // each class its own color: hues far apart
  const hues = Object.entries(s.swatches).map(([label, c]) => [label, hue(c)]);
  for (let i = 0; i < hues.length; i++)
    for (let j = i + 1; j < hues.length; j++) {
      const d = Math.abs(hues[i][1] - hues[j][1]);
      expect(Math.min(d, 360 - d) >= 60, `${lang}: ${hues[i][0]} and ${hues[j][0]} look alike: hues ${hues[i][1]} and ${hues[j][1]}`);
    }
  const perLabel = {};
  for (const b of s.boxes) perLabel[b.label] = (perLabel[b.label] || 0) + 1;
  const same = (a, b) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
  expect(same(perLabel, s.counts), `${lang}: the counts shown ${JSON.stringify(s.counts)} are not the boxes per label ${JSON.stringify(perLabel)}`);
  expect(objects.test(s.total || '') && Number((s.total.match(/\d+/) || [])[0]) === s.boxes.length,
    `${lang}: the total says "${s.total}" for ${s.boxes.length} boxes`);
  expect(s.latency.length === 1 && latency.test(s.latency[0]) && s.latency[0].endsWith(`· v${version}`), `${lang}: the latency line: ${s.latency.join(' | ')}`);
  return { view: s.view, boxes: s.boxes.map(({ label, score, box }) => ({ label, score, box })), counts: s.counts, total: s.boxes.length, latency: s.latency[0] };
}

async function run() {
  // ---- sign in, open the deployment from the list ----
  await signIn(page, cfg.url, cfg.username, cfg.password, { until: 'topbar' });
  await page.locator('.mainnav a[href="/deployments"]').click();
  await page.locator('#deployment-table').getByRole('link', { name: cfg.deployment_name, exact: true }).click();
  await page.waitForURL(new RegExp(`/deployments/${cfg.deployment}$`));
  await page.getByRole('heading', { name: cfg.deployment_name }).getByText('Ready').waitFor();
  await page.getByRole('heading', { name: 'Try it' }).waitFor();
  const classesTile = (await page.locator('.tile-stat', { hasText: 'Classes' }).locator('strong').innerText()).trim();
  expect(classesTile === String(cfg.classes.length), 'the classes tile says ' + classesTile);
  log('step signed in, deployment opened');

  // ---- drop the image on "try it" ----
  const zone = page.getByRole('region', { name: 'Drop an image here to see what the model says' });
  const dt = await page.evaluateHandle(({ b64, name }) => {
    const bin = atob(b64);
    const u = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    const d = new DataTransfer();
    d.items.add(new File([u], name, { type: 'image/png' }));
    return d;
  }, { b64: readFileSync(cfg.image).toString('base64'), name: basename(cfg.image) });
  await zone.dispatchEvent('dragenter', { dataTransfer: dt });
  await zone.dispatchEvent('dragover', { dataTransfer: dt });
  await page.locator('.trybox.over').waitFor(); // the drop zone lights up under the dragged file
  const answered = predicted();
  await zone.dispatchEvent('drop', { dataTransfer: dt });
  expect((await answered).status() === 200, 'the prediction failed');
  await page.locator('#det-total').waitFor();
  await page.locator('.try-boxes rect').first().waitFor();
  expect(await page.locator('.trybox.over').count() === 0, 'the drop zone stays lit after the drop');
  result.en = check(await shown(), 'en', {
    objects: /^\d+ objects? found$/,
    latency: /^server [\d,]+\.\d ms \(inference [\d,]+\.\d ms\), round trip [\d,]+ ms · v\d+$/,
  });
  // the figures count the request at once, with a latency
  await page.locator('#dep-requests:not([data-value="0"])').waitFor({ timeout: 3000 });
  result.requests_shown = Number(await page.locator('#dep-requests').getAttribute('data-value'));
  expect(!/^0\.0 /.test(await page.locator('#dep-latency').innerText()), 'the average latency is still 0.0 ms after the prediction');
  log('step dropped:', result.en.total, 'boxes,', JSON.stringify(result.en.counts), '·', result.en.latency);

  // ---- the curl command for the same request, copied ----
  const curl = (await page.locator('#curl').innerText()).trim();
  for (const part of ['Authorization: Bearer $TOKEN', '--data-binary @image.jpg', `${cfg.url}/api/v1/deployments/${cfg.deployment}/predict`])
    expect(curl.includes(part), `the curl command lacks ${part}: ${curl}`);
  await page.locator('.codewrap').getByRole('button', { name: 'Copy' }).click();
  await page.locator('.toast').filter({ hasText: 'Copied to the clipboard' }).first().waitFor();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(copied === curl, 'the clipboard holds something else than the command shown:\n' + copied);
  result.curl = copied;
  await shot('deployment_det_en');
  log('step curl command copied');

  // ---- 简体中文: the same result, then the image chosen with the button ----
  await page.locator('#lang-select').selectOption('zh');
  await page.getByRole('heading', { name: '试一试' }).waitFor();
  await page.locator('#det-total', { hasText: '个目标' }).waitFor();
  const zhShown = await shown();
  expect(JSON.stringify(zhShown.boxes) === JSON.stringify((await shown()).boxes) && zhShown.boxes.length === result.en.total,
    'the boxes changed with the language');
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.getByRole('button', { name: '选择图片' }).click()]);
  const again = predicted();
  await chooser.setFiles(cfg.image);
  expect((await again).status() === 200, 'the second prediction failed');
  await page.locator('#det-total').waitFor();
  await page.locator('.try-boxes rect').first().waitFor();
  result.zh = check(await shown(), 'zh', {
    objects: /^发现 \d+ 个目标$/,
    latency: /^服务器 [\d,]+\.\d 毫秒（推理 [\d,]+\.\d 毫秒），往返 [\d,]+ 毫秒 · v\d+$/,
  });
  await page.getByRole('heading', { name: '在程序中调用' }).waitFor();
  await shot('deployment_det_zh');
  await page.locator('#lang-select').selectOption('en');
  log('step Chinese:', result.zh.total, 'boxes,', JSON.stringify(result.zh.counts), '·', result.zh.latency);

  await preAnnotate();
  await trainOnBackbone();
}

// ---- the training wizard of a detection project with a custom classifier: the detector's
// backbone chosen from it, trained for one epoch and watched to its end ----
async function trainOnBackbone() {
  const bb = cfg.bb;
  await page.goto(`${cfg.url}/projects/${bb.project}/training`);
  await page.locator('#step-data').getByText(bb.version_name).waitFor();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.locator('[data-algorithm="det-s"]').click();
  await page.getByRole('button', { name: 'Next' }).click();
  // the backbone is a basic parameter: a choice of the project's classifiers, "none" by default
  const sel = page.locator('#step-params select[name="backbone"]');
  await sel.waitFor();
  const options = await sel.locator('option').allInnerTexts();
  expect(options.length === 2 && /none/.test(options[0]) && options[1] === bb.classifier,
    'the backbone choices: ' + JSON.stringify(options));
  const named = await page.locator('#step-params label.param', { has: page.locator('select[name="backbone"]') })
    .locator('.param-name').innerText();
  expect(/^Backbone\b/.test(named), 'the backbone parameter is named ' + JSON.stringify(named));
  await sel.selectOption(bb.classifier);
  await page.locator('#step-params input[name="epochs"]').fill('1');
  await page.locator('#step-params input[name="imgsz"]').fill('64');
  await page.locator('details summary').filter({ hasText: /advanced/i }).click();
  await page.locator('#step-params select[name="freeze_backbone"]').selectOption('true');
  await page.locator('#start-training').click();
  await page.waitForURL(/\/jobs\/\d+$/);
  result.bb_job = Number(page.url().match(/jobs\/(\d+)/)[1]);
  await page.locator('.board[data-status="succeeded"]').waitFor({ timeout: 90000 });
  const logText = await page.locator('#job-log').innerText();
  expect(/backbone from /.test(logText), 'the job log does not name the backbone');
  log('step a detector trained on the custom classifier\'s backbone in the wizard: job', result.bb_job);
}

// ---- pre-annotation of a detection set with the deployed detector ----
// The summary tiles of the set's pre-annotation panel (for detection: boxes).
async function summary() {
  const out = {};
  for (const k of ['proposed', 'pending', 'accepted', 'corrected', 'deleted'])
    out[k] = Number((await page.locator(`#pre-summary [data-k="${k}"]`).innerText()).replace(/[^\d]/g, ''));
  return out;
}
// The workspace's shape list: label, the model's score as shown (none once a person's).
const shapeRows = () => page.locator('#ws-shape-list .srow').evaluateAll((rows) => rows.map((r) => ({
  label: r.querySelector('.lbl')?.textContent.trim(),
  score: r.querySelector('.model')?.textContent.trim() || null,
})));
const shapesTitle = (n) => page.waitForFunction((n) => new RegExp(`\\(${n}\\)`).test(document.querySelector('#shapes-title')?.textContent || ''), n);

async function preAnnotate() {
  const pre = cfg.pre;
  const out = (result.pre = {});
  const annotation = `${cfg.url}/projects/${pre.project}/annotation?set=${pre.set}`;
  await page.goto(annotation);
  await page.locator(`.set-detail[data-set="${pre.set_name}"]`).waitFor();
  await page.locator('#pre-summary-empty').waitFor();
  // the detector, a threshold, then run it
  await page.locator('#pre-deployment').selectOption({ label: `${cfg.deployment_name} — ${pre.model} v1` });
  const pct = `${Math.round(pre.threshold * 100)}%`;
  await page.getByLabel(/Keep proposals scored at least/).fill(String(pre.threshold));
  await page.locator('#pre-form .thr strong').filter({ hasText: new RegExp(`^${pct}$`) }).waitFor();
  await page.locator('#pre-run').click();
  await page.locator('.toast').filter({ hasText: `Pre-annotating with ${pre.model} v1` }).first().waitFor();
  const { states, id: preJob } = await waitPreJob(page, 90);
  out.job = preJob;
  // (for detection the job's other figures count boxes)
  await page.locator('#pre-result').filter({ hasText: new RegExp(`^${pre.images} images got a proposal; \\d+ boxes below the threshold; \\d+ boxes with a class`) }).waitFor();
  out.result_line = (await page.locator('#pre-result').innerText()).trim();
  await page.locator('#pre-summary').waitFor();
  expect((await page.locator('#pre-summary .tile-stat').first().innerText()).includes('Boxes proposed'), 'the summary does not count boxes');
  out.summary_before = await summary();
  const s0 = out.summary_before;
  expect(s0.proposed >= pre.images && s0.pending === s0.proposed && s0.accepted + s0.corrected + s0.deleted === 0,
    'the summary after the job: ' + JSON.stringify(s0));
  log('step pre-annotated with', pre.model, 'at', pct + ':', s0.proposed, 'boxes pending; job states seen:', [...states].join(' → '));

  // ---- the workspace on the set's first image: the proposals with their scores ----
  await page.locator('#open-workspace').click();
  await page.waitForURL((u) => u.pathname === `/projects/${pre.project}/annotate/${pre.set}` && u.searchParams.has('item'));
  out.item = Number(new URL(page.url()).searchParams.get('item'));
  await page.waitForFunction(() => {
    const c = document.querySelector('#ws-canvas');
    return c && (c.getAttribute('aria-label') || '').includes('×') && !document.querySelector('.stage-msg');
  }, null, { timeout: 15000 });
  out.filename = (await page.locator('#ws-filename').innerText()).trim();
  await page.locator('#ws-shape-list .srow').first().waitFor();
  const rows = await shapeRows();
  const n = rows.length;
  expect(n >= 2, `${out.filename}: ${n} proposals, at least 2 needed (one to confirm, one to delete)`);
  for (const r of rows)
    expect(cfg.classes.includes(r.label) && /^(0\.\d\d|1\.00)$/.test(r.score || '') && Number(r.score) >= pre.threshold - 0.005,
      'a shape is not shown as a model proposal with its score: ' + JSON.stringify(r));
  out.proposals = rows;
  await shapesTitle(n);
  const banner = (await page.locator('#model-banner').innerText()).replace(/\s+/g, ' ');
  expect(banner.startsWith(`${n} model proposals (dashed)`), 'the proposals banner: ' + banner);
  const canvas = page.locator('#ws-canvas');
  await canvas.focus();
  await page.keyboard.press('y'); // selects the first proposal
  await page.locator('#confirm-one').waitFor();
  const sel = (await page.locator('#sel-title').locator('xpath=../..').innerText()).replace(/\s+/g, ' ');
  expect(sel.includes(`${rows[0].label} · model score ${rows[0].score}`), 'the selected proposal: ' + sel);
  await screenshot(page, cfg.shots, 'preannotation_det_en', { keepFocus: true, keepScroll: true, pointer: [5, 300], a11y: { width: 140 } });
  log('step', out.filename, 'opened in the workspace:', n, 'proposals', rows.map((r) => `${r.label} ${r.score}`).join(', '));

  // ---- Y confirms it (and selects the next), Delete deletes that one, Ctrl+Enter submits ----
  await canvas.focus();
  await page.keyboard.press('y');
  await page.waitForFunction(() => {
    const first = document.querySelector('#ws-shape-list .srow'); // the confirmed one: a person's now
    return first && !first.querySelector('.model');
  });
  const afterY = await shapeRows();
  expect(afterY[0].label === rows[0].label && afterY[0].score === null && afterY.slice(1).every((r) => r.score !== null),
    'after Y: ' + JSON.stringify(afterY));
  out.confirmed = rows[0];
  out.deleted = rows[1];
  await page.keyboard.press('Delete');
  await shapesTitle(n - 1);
  const left = await shapeRows();
  expect(left[0].label === rows[0].label && left[0].score === null && JSON.stringify(left.slice(1)) === JSON.stringify(rows.slice(2)),
    'after Delete: ' + JSON.stringify(left));
  out.confirmed_on_submit = n - 2;
  if (n === 2) await page.locator('#model-banner').waitFor({ state: 'detached' });
  await page.keyboard.press('Control+Enter');
  if (n > 2) await page.locator('#submit-confirm-all').click(); // the rest confirmed as they are
  await page.locator('.toast').filter({ hasText: `${out.filename} submitted for review` }).first().waitFor();
  await page.waitForURL((u) => Number(u.searchParams.get('item')) !== out.item);
  log('step confirmed', `${rows[0].label} ${rows[0].score}`, 'with Y, deleted', `${rows[1].label} ${rows[1].score},`,
    'submitted with Ctrl+Enter', n > 2 ? `(${n - 2} more confirmed on submitting)` : '');

  // ---- back on the set: the summary counts what was done ----
  await page.goto(annotation);
  await page.locator(`#pre-summary [data-k="pending"]`).filter({ hasText: new RegExp(`^${s0.pending - n}$`) }).waitFor();
  out.summary_after = await summary();
  const s1 = out.summary_after;
  expect(s1.proposed === s0.proposed && s1.accepted === n - 1 && s1.deleted === 1 && s1.corrected === 0,
    'the summary after the workspace: ' + JSON.stringify(s1));
  log('step the summary:', JSON.stringify(s1));
}

await main(run, {
  browser, page: () => page, errors: pageErrors, shots: cfg.shots, failure: 'failure_detection', fullPage: true,
  report: () => ({ RESULT: result }),
});
