// The Annotation and Review tabs driven in Debian's chromium with playwright-core, as the
// people of a project would use them. Run by tests/integration/test_e2e_annotation_review.py
// (which starts the server, creates the users, the project, its labels and images):
//   node tests/e2e/annotation_review.mjs CONFIG.json
// An engineer creates an annotation set, splits it into tasks, assigns them and puts one
// back in the pool; annotators' work is saved and submitted through the API (the workspace
// is tested on its own); a reviewer rejects one image with a comment and accepts the rest
// by keyboard (one by mouse); the annotator sees the rejected image with the comment and
// opens the next image to do; another annotator claims the pooled task.
// Prints "step ..." lines, then "RESULT {json}"; exits non-zero on the first failure (with a
// screenshot of the page at that moment).
import { loadConfig, t0, log, expect, localePart, launch, openPage, signIn as signInOn, a11y, screenshot, waitPreJob, main } from './lib.mjs';

const cfg = loadConfig();
const result = {};

// this screen's dictionary has the same keys in both languages
{
  const m = await localePart(cfg.locales, 'ann.js');
  expect(Object.keys(m.en).length > 100, 'locales/parts/ann.js looks empty');
}

const browser = await launch(cfg);
const pageErrors = [];
let page = null; // the page of the person acting now (for the failure screenshot)

// A signed-in page of its own for a user (each person has their own browser profile).
async function signIn(user) {
  const p = await openPage(browser, pageErrors, { who: user });
  await signInOn(p, cfg.url, user, cfg.passwords[user]);
  page = p;
  return p;
}

// The server's API with a user's token (what the workspace would send).
async function call(p, method, path, body) {
  const token = await p.evaluate(() => localStorage.getItem('autocv.token'));
  const r = await p.request.fetch(cfg.url + path, {
    method,
    headers: { Authorization: 'Bearer ' + token, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    data: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  expect(r.ok(), `${method} ${path}: ${r.status()} ${text}`);
  return text ? JSON.parse(text) : null;
}

const shot = (p, name, fullPage = false) => screenshot(p, cfg.shots, name, { fullPage });

const counts = async (p) => (await p.locator('#review-counts').innerText()).replace(/\s+/g, ' ');
const waitCounts = (p, re) => p.waitForFunction((src) => new RegExp(src).test(document.querySelector('#review-counts')?.innerText.replace(/\s+/g, ' ') || ''), re.source);

async function run() {
  const P = `${cfg.url}/projects/${cfg.project}`;

  // ---- the engineer creates a set from chosen images ----
  const eng = await signIn(cfg.engineer);
  await eng.goto(`${P}/annotation`);
  await eng.getByText('No annotation sets yet').waitFor();
  await eng.getByRole('button', { name: 'New annotation set' }).click();
  const dlg = eng.getByRole('dialog');
  await dlg.getByLabel('Name', { exact: true }).fill('Tray boxes');
  await dlg.locator('[data-task="det"] input').check();
  await dlg.getByLabel('Choose images').check();
  await dlg.getByLabel('File name contains').fill('part_');
  await dlg.locator('#pick-count').filter({ hasText: `0 chosen · ${cfg.parts.length} match` }).waitFor();
  await dlg.getByRole('button', { name: `Choose all ${cfg.parts.length}` }).click();
  await dlg.locator('#pick-count').filter({ hasText: `${cfg.parts.length} chosen` }).waitFor();
  await a11y(eng, 'the new set dialog');
  // one image taken out by hand, then put back
  const firstPick = dlg.locator('.pick-grid input[type="checkbox"]').first();
  await firstPick.uncheck();
  await dlg.locator('#pick-count').filter({ hasText: `${cfg.parts.length - 1} chosen` }).waitFor();
  await firstPick.check();
  await dlg.locator('#pick-count').filter({ hasText: `${cfg.parts.length} chosen` }).waitFor();
  await dlg.getByRole('button', { name: 'Create set' }).click();
  await eng.locator('.set-detail[data-set="Tray boxes"]').waitFor();
  const total = await eng.locator('#set-total').innerText();
  expect(total === String(cfg.parts.length), `the new set holds ${total} images, expected ${cfg.parts.length}`);
  log('step set created in the browser with', total, 'chosen images');

  // ---- split into tasks of 3, in turn to both annotators; the last task back to the pool ----
  const split = eng.locator('#split-form');
  await split.getByLabel('Images per task').fill('3');
  for (const a of cfg.annotators) expect(await split.getByLabel(a).isChecked(), `${a} is not ticked by default`);
  const n = cfg.parts.length, k = Math.ceil(n / 3);
  await split.locator('#split-preview').filter({ hasText: `${n} images → ${k} tasks, handed out in turn to 2 people` }).waitFor();
  await split.getByRole('button', { name: 'Split into tasks' }).click();
  await eng.locator('#task-table tbody tr').nth(k - 1).waitFor();
  const owners = await eng.locator('#task-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.task + '=' + r.dataset.assignee));
  expect(owners.join(' ') === `Task 1=${cfg.annotators[0]} Task 2=${cfg.annotators[1]} Task 3=${cfg.annotators[0]}`, 'tasks: ' + owners.join(' '));
  await eng.getByLabel('Assign Task 3 to').selectOption({ label: 'Pool (anyone may claim)' });
  await eng.locator('#task-table tr[data-task="Task 3"][data-assignee=""]').waitFor();
  expect((await eng.locator('#split-form').count()) === 0, 'the split form stays although every image is in a task');
  await eng.locator('#set-tasks-n').filter({ hasText: String(k) }).waitFor();
  log('step split into', k, 'tasks:', owners.join(' '), '→ Task 3 to the pool');

  // ---- the annotators' work, saved and submitted through the API ----
  const set = (await call(eng, 'GET', `/api/v1/projects/${cfg.project}/annotation-sets`)).items.find((s) => s.name === 'Tray boxes');
  result.set = set.id;
  const tasks = (await call(eng, 'GET', `/api/v1/annotation-sets/${set.id}/tasks`)).items;
  const work = {};
  for (const [who, task, count] of [[cfg.annotators[0], tasks[0], 3], [cfg.annotators[1], tasks[1], 2]]) {
    const p = await signIn(who);
    const items = (await call(p, 'GET', `/api/v1/annotation-sets/${set.id}/items?task_id=${task.id}`)).items;
    work[who] = [];
    for (const it of items.slice(0, count)) {
      const shapes = [
        { type: 'box', label: 'scratch', x: 10 + it.image_id, y: 8, w: 40, h: 22 },
        { type: 'box', label: 'dent', x: 90, y: 50, w: 30, h: 30 },
      ];
      const saved = await call(p, 'PUT', `/api/v1/annotation-sets/${set.id}/items/${it.image_id}`, { revision: 0, shapes });
      await call(p, 'POST', `/api/v1/annotation-sets/${set.id}/items/${it.image_id}/submit`, { revision: saved.revision });
      work[who].push(it.image_id);
    }
    await p.context().close();
  }
  page = eng;
  result.work = work;
  log('step annotated and submitted through the API:', JSON.stringify(work));

  // ---- the engineer sees the progress, per status and per person ----
  await eng.reload();
  await eng.locator('#annotator-table').waitFor();
  const statusText = await eng.locator('#set-status').innerText();
  expect(/Submitted\s*5/.test(statusText) && /New\s*3/.test(statusText), 'set progress: ' + statusText.replace(/\s+/g, ' '));
  for (const [who, ids] of Object.entries(work)) {
    const row = eng.locator(`#annotator-table tr[data-user="${who}"]`);
    const annotated = await row.locator('[data-k="annotated"]').innerText();
    expect(annotated === String(ids.length), `${who} annotated ${annotated}, expected ${ids.length}`);
  }
  const t1 = await eng.locator('#task-table tr[data-task="Task 1"]').innerText();
  expect(/\b0$/.test(t1.trim()), 'Task 1 still has work to do: ' + t1);
  await shot(eng, 'annotation_en', true);
  await eng.locator('#lang-select').selectOption('zh');
  await eng.getByRole('heading', { name: '每人进度' }).waitFor();
  await eng.getByRole('heading', { name: '预标注' }).waitFor();
  await shot(eng, 'annotation_zh', true);
  await eng.locator('#lang-select').selectOption('en');
  log('step progress per status and per person shown');

  // ---- the reviewer: the queue, the shapes, decisions by keyboard ----
  const rev = await signIn(cfg.reviewer);
  await rev.goto(`${P}/review`);
  await rev.locator('#review-queue li').nth(4).waitFor();
  expect(/5 to review 0 accepted 0 sent back/.test(await counts(rev)), 'counts: ' + (await counts(rev)));
  // the image with its shapes drawn over it
  await rev.waitForFunction(() => document.querySelector('.viewer svg image')?.getAttribute('href')?.startsWith('blob:'));
  const first = Number(await rev.locator('#review-item').getAttribute('data-image'));
  const drawn = await rev.locator('.viewer svg g.shape').evaluateAll((gs) => gs.map((g) => g.dataset.label + ':' + (g.querySelector('rect')?.getAttribute('x') || '')));
  expect(drawn.join(' ') === `scratch:${10 + first} dent:90`, 'shapes drawn: ' + drawn.join(' '));
  const color = await rev.locator('.viewer svg g.shape[data-label="scratch"] rect').evaluate((r) => getComputedStyle(r).stroke);
  expect(color === 'rgb(232, 89, 12)', 'the scratch box is not drawn in the label colour: ' + color);
  // J and K move through the queue; H hides the shapes
  await rev.keyboard.press('j');
  await rev.waitForFunction((id) => Number(document.querySelector('#review-item')?.dataset.image) !== id, first);
  await rev.keyboard.press('k');
  await rev.waitForFunction((id) => Number(document.querySelector('#review-item')?.dataset.image) === id, first);
  await rev.keyboard.press('h');
  await rev.waitForFunction(() => document.querySelectorAll('.viewer svg g.shape').length === 0);
  await rev.keyboard.press('h');
  await rev.locator('.viewer svg g.shape').first().waitFor();
  // zoom: + and - by keyboard, the wheel about the pointer, dragging pans, 0 shows it all
  const pct = async () => Number((await rev.locator('#sv-zoom-pct').innerText()).replace('%', ''));
  const viewBox = () => rev.locator('.viewer svg').getAttribute('viewBox');
  const whole = await viewBox();
  await rev.keyboard.press('+');
  await rev.waitForFunction(() => document.querySelector('#sv-zoom-pct')?.innerText === '150%');
  await rev.keyboard.press('+');
  await rev.waitForFunction(() => document.querySelector('#sv-zoom-pct')?.innerText === '225%');
  await rev.keyboard.press('-');
  await rev.waitForFunction(() => document.querySelector('#sv-zoom-pct')?.innerText === '150%');
  const vr = await rev.locator('.viewer .sv').boundingBox();
  await rev.mouse.move(vr.x + vr.width * 0.3, vr.y + vr.height * 0.4);
  await rev.mouse.wheel(0, -300);
  await rev.waitForFunction(() => Number(document.querySelector('#sv-zoom-pct')?.innerText.replace('%', '')) > 150);
  const before = await viewBox();
  await rev.mouse.down();
  await rev.mouse.move(vr.x + vr.width * 0.5, vr.y + vr.height * 0.6, { steps: 5 });
  await rev.mouse.up();
  const after = await viewBox();
  expect(before !== after && (await pct()) > 150, `dragging did not pan the zoomed image: ${before} -> ${after}`);
  await rev.keyboard.press('0');
  await rev.waitForFunction((w) => document.querySelector('.viewer svg')?.getAttribute('viewBox') === w, whole);
  expect((await pct()) === 100, 'fit did not show the whole image');
  log('step review: zoom by keys and wheel, pan by dragging, fit');
  await shot(rev, 'review_en');
  await rev.locator('#lang-select').selectOption('zh');
  await rev.getByRole('button', { name: /^通过/ }).waitFor();
  await rev.locator('#review-counts').filter({ hasText: '5 张待审核' }).waitFor();
  await shot(rev, 'review_zh');
  await rev.locator('#lang-select').selectOption('en');
  await rev.getByRole('button', { name: /^Accept/ }).waitFor();

  // R without a comment: the box is focused and Enter refuses to send an empty comment
  await rev.keyboard.press('r');
  await rev.waitForFunction(() => document.activeElement?.id === 'review-comment');
  await rev.keyboard.press('Enter');
  await rev.getByText('Write what the annotator should fix').waitFor();
  expect(/5 to review/.test(await counts(rev)), 'an empty rejection was sent');
  result.comment = 'The scratch at the left edge is missing; draw it too.';
  await rev.keyboard.type(result.comment);
  await rev.keyboard.press('Enter');
  await waitCounts(rev, /4 to review 0 accepted 1 sent back/);
  result.rejected = first;
  const second = Number(await rev.locator('#review-item').getAttribute('data-image'));
  expect(second !== first, 'the queue did not advance after the rejection');
  // A accepts, the queue advances and the counts follow; the last one by mouse
  for (let i = 1; i <= 3; i++) {
    const before = await rev.locator('#review-item').getAttribute('data-image');
    await rev.keyboard.press('a');
    await waitCounts(rev, new RegExp(`${4 - i} to review ${i} accepted 1 sent back`));
    expect((await rev.locator('#review-item').getAttribute('data-image')) !== before, 'the queue did not advance');
  }
  await rev.getByRole('button', { name: /^Accept/ }).click();
  await waitCounts(rev, /0 to review 4 accepted 1 sent back/);
  await rev.getByText('The queue is empty').waitFor();
  log('step reviewed:', await counts(rev));

  // ---- stored on the server ----
  const items = (await call(rev, 'GET', `/api/v1/annotation-sets/${set.id}/items?limit=100`)).items;
  const byId = Object.fromEntries(items.map((it) => [it.image_id, it]));
  expect(byId[first].status === 'rejected' && byId[first].review_comment === result.comment && byId[first].reviewer === cfg.reviewer,
    'the rejection is not stored: ' + JSON.stringify(byId[first]));
  const submitted = Object.values(work).flat();
  for (const id of submitted.filter((x) => x !== first))
    expect(byId[id].status === 'accepted' && byId[id].reviewer === cfg.reviewer, `image ${id} is ${byId[id].status}`);
  log('step statuses and the comment are stored');

  // ---- the annotator sees the comment and opens the next image to do (the rejected one) ----
  const owner = Object.entries(work).find(([, ids]) => ids.includes(first))[0];
  const ann = await signIn(owner);
  await ann.goto(`${P}/annotation`);
  const back = ann.locator(`#sent-back .back-row[data-image="${first}"]`);
  await back.waitFor();
  const said = await back.locator('.comment').innerText();
  expect(said === result.comment, 'the annotator sees the comment as: ' + said);
  const fix = await back.getByRole('link', { name: 'Fix it' }).getAttribute('href');
  expect(fix === `/projects/${cfg.project}/annotate/${set.id}?item=${first}`, 'the Fix it link goes to ' + fix);
  await ann.locator('#my-tasks').waitFor();
  await shot(ann, 'annotation_mine_en');
  await ann.locator('#lang-select').selectOption('zh');
  await ann.getByRole('heading', { name: '我的工作' }).waitFor();
  await ann.locator('#my-tasks').waitFor();
  await shot(ann, 'annotation_mine_zh');
  // the choice is the user's, kept by the server: another browser (nothing in its storage)
  // opens in Chinese after signing in
  {
    const other = await openPage(browser, pageErrors, { who: owner + ' (another browser)' });
    await signInOn(other, cfg.url, owner, cfg.passwords[owner], { until: 'topbar' });
    await other.getByRole('heading', { name: `您好，${owner}` }).waitFor();
    await other.goto(`${P}/annotation`);
    await other.getByRole('heading', { name: '我的工作' }).waitFor();
    expect((await other.evaluate(() => document.documentElement.lang)) === 'zh-CN', 'the other browser is not in Chinese');
    await other.context().close();
    page = ann;
  }
  await ann.locator('#lang-select').selectOption('en');
  await ann.getByRole('heading', { name: 'My work' }).waitFor();
  await ann.getByRole('button', { name: 'Open the next image of Tray boxes' }).click();
  await ann.waitForURL((u) => u.pathname === `/projects/${cfg.project}/annotate/${set.id}` && u.searchParams.get('item') === String(first));
  log('step', owner, 'sees the comment and the next image opens the rejected one');

  // ---- the other annotator claims the pooled task ----
  const other = cfg.annotators.find((a) => a !== owner);
  const ann2 = await signIn(other);
  await ann2.goto(`${P}/annotation`);
  await ann2.getByRole('button', { name: 'Claim a task of Tray boxes' }).click();
  await ann2.locator('#my-tasks [data-set="Tray boxes"]').filter({ hasText: 'Task 3' }).waitFor();
  result.claimed_by = other;
  log('step', other, 'claimed Task 3 from the pool');

  // ---- pre-annotation with a deployed model (a classification set of another project) ----
  page = eng;
  const F = `${cfg.url}/projects/${cfg.fashion_project}`;
  await eng.goto(`${F}/annotation`);
  await eng.locator('#set-list [data-set="New garments"]').click();
  await eng.locator('.set-detail[data-set="New garments"]').waitFor();
  await eng.locator('#pre-summary-empty').waitFor();
  const dep = await eng.locator('#pre-deployment option:checked').innerText();
  expect(/belt-line — belt v1/.test(dep), 'the deployment offered: ' + dep);
  await eng.getByLabel(/Keep proposals scored at least/).fill('0');
  await eng.locator('#pre-run').click();
  const { states, id: preJob } = await waitPreJob(eng, 60);
  result.pre_job = preJob;
  await eng.locator('#pre-result').filter({ hasText: '12 images got a proposal' }).waitFor();
  const tile = (k) => eng.locator(`#pre-summary [data-k="${k}"]`).innerText();
  await eng.locator('#pre-summary').waitFor();
  expect((await tile('proposed')) === '12' && (await tile('pending')) === '12', 'summary: ' + (await eng.locator('#pre-summary').innerText()));
  log('step pre-annotated 12 images with the deployed model; job states seen:', [...states].join(' → '));
  // an annotator keeps one proposal, corrects one and deletes one (what the workspace saves)
  const annF = await signIn(cfg.annotators[0]);
  const fitems = (await call(annF, 'GET', `/api/v1/annotation-sets/${cfg.fashion_set}/items?limit=3`)).items;
  const decisions = [];
  for (const [i, it] of fitems.entries()) {
    const doc = await call(annF, 'GET', `/api/v1/annotation-sets/${cfg.fashion_set}/items/${it.image_id}`);
    const proposed = doc.proposal.proposal.tags[0].label;
    expect(doc.tags[0] === proposed, `image ${it.image_id} does not hold the proposal ${proposed}`);
    const tags = i === 0 ? [proposed] : i === 1 ? [cfg.classes.find((c) => c !== proposed)] : [];
    await call(annF, 'PUT', `/api/v1/annotation-sets/${cfg.fashion_set}/items/${it.image_id}`, { revision: doc.revision, tags });
    decisions.push(tags.join() || '-');
  }
  await annF.context().close();
  page = eng;
  await eng.reload();
  await eng.locator('#set-list [data-set="New garments"]').click();
  await eng.locator('#pre-summary [data-k="pending"]').filter({ hasText: '9' }).waitFor();
  const got = ['accepted', 'corrected', 'deleted'].map((k) => eng.locator(`#pre-summary [data-k="${k}"]`).innerText());
  expect((await Promise.all(got)).join(' ') === '1 1 1', 'summary after the annotator: ' + (await eng.locator('#pre-summary').innerText()));
  await shot(eng, 'preannotation_en', true);
  await eng.locator('#lang-select').selectOption('zh');
  await eng.getByRole('heading', { name: '预标注' }).waitFor();
  await eng.locator('#pre-summary [data-k="pending"]').filter({ hasText: '9' }).waitFor();
  await shot(eng, 'preannotation_zh', true);
  await eng.locator('#lang-select').selectOption('en');
  log('step the summary follows the annotator: kept, corrected, deleted =', decisions.join(' | '));
  result.seconds = (Date.now() - t0) / 1000;
}

await main(run, { browser, page: () => page, errors: pageErrors, shots: cfg.shots, report: () => ({ RESULT: result }) });
