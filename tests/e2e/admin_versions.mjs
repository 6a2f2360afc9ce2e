// Dataset versions, project members, administration and model import, driven in Debian's
// chromium with playwright-core as a person would use them. Run by
// tests/integration/test_e2e_admin_versions.py (which starts the server and prepares data):
//   node tests/e2e/admin_versions.mjs CONFIG.json
// Prints one "step ..." line per step, then "RESULT {json}"; exits non-zero on the first
// failure (with a screenshot of the page at that moment).
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, log, expect, localePart, launch, openPage, signIn, apiLogin, screenshot, a11y, main } from './lib.mjs';

const cfg = loadConfig();
mkdirSync(cfg.downloads, { recursive: true });
const result = {};

// ---- this screen's dictionary: English and Chinese have the same keys ----
{
  const m = await localePart(cfg.locales, 'adm.js');
  const a = Object.keys(m.en);
  expect(a.every((k) => m.zh[k] && m.zh[k] !== m.en[k] || /^(ver\.fmt\.(coco|yolo|voc|imagefolder)|imp\.kind\.onnx|adm\.tokens\.kind\.api)$/.test(k)),
    'locales/parts/adm.js: some Chinese strings are empty or left in English');
  log('step dictionary', a.length, 'keys in both languages');
}

// the API, for what a person would do elsewhere (another tab, another machine)
const apiToken = await apiLogin(cfg.url, cfg.username, cfg.password);
const api = (path, opts = {}) => fetch(cfg.url + path, { ...opts, headers: { Authorization: 'Bearer ' + apiToken, ...(opts.headers || {}) } });

const browser = await launch(cfg);
const pageErrors = [];
const page = await openPage(browser, pageErrors, { timeout: 10000, context: { acceptDownloads: true } });
page.on('dialog', (d) => {
  pageErrors.push('unexpected browser dialog: ' + d.message());
  d.dismiss();
});

const shot = (name, { fullPage = false, keepScroll = false } = {}) => screenshot(page, cfg.shots, name, { fullPage, keepScroll, settle: 200 });
const dialog = () => page.locator('dialog[open]');
const toast = (re) => page.locator('.toast').filter({ hasText: re }).first().waitFor();
const sliders = async () => Object.fromEntries(await Promise.all(['train', 'val', 'test'].map(async (k) => [k, Number(await page.locator('#split-' + k).inputValue())])));

async function run() {
  // ---- sign in ----
  await signIn(page, cfg.url, cfg.username, cfg.password, { until: 'topbar' });
  log('step signed in');

  // ---- dataset versions: the list, a new one with the split sliders ----
  const P = cfg.url + `/projects/${cfg.project}`;
  await page.goto(P + '/versions');
  await page.locator('#version-list [data-version="baseline"]').waitFor();
  expect(await page.locator('#version-list li').count() === 2, 'the two prepared versions are not listed');
  await page.locator('#class-split-table').waitFor();
  await page.locator('#new-version').click();
  await dialog().locator('#nv-name').waitFor();
  await page.locator('#nv-name').fill('v2 browser');
  let s = await sliders();
  expect(s.train === 80 && s.val === 10 && s.test === 10, 'default split: ' + JSON.stringify(s));
  // validation to 20 % with the keyboard: training gives the 10 points
  await page.locator('#split-val').focus();
  for (let i = 0; i < 10; i++) await page.keyboard.press('ArrowRight');
  s = await sliders();
  expect(s.train === 70 && s.val === 20 && s.test === 10, 'after moving validation: ' + JSON.stringify(s));
  // training dragged to 40 %: the rest shared between validation and test (2:1), still 100
  await page.locator('#split-train').fill('40');
  s = await sliders();
  expect(s.train + s.val + s.test === 100 && s.train === 40 && s.val === 40 && s.test === 20, 'after moving training: ' + JSON.stringify(s));
  // back to 70 / 20 / 10
  await page.locator('#split-train').fill('70');
  s = await sliders();
  expect(s.train === 70 && s.val === 20 && s.test === 10, 'back: ' + JSON.stringify(s));
  const est = await page.locator('.split-est').allInnerTexts();
  expect(/about 70 images/.test(est[0]) && /about 20 images/.test(est[1]) && /about 10 images/.test(est[2]), 'the estimate before creating: ' + est.join(' | '));
  await page.locator('#nv-seed').fill('7');
  const preview = await page.locator('#nv-preview').innerText();
  expect(/100/.test(preview) && /70 \/ 20 \/ 10/.test(preview), 'preview: ' + preview);
  await page.locator('#nv-create').click();
  await toast(/Version v2 browser created with 100 images/);
  await page.waitForURL(/versions\?v=\d+$/);
  await page.locator('#ver-detail-h', { hasText: 'v2 browser' }).waitFor();
  await page.locator('#class-split-table tbody tr').first().waitFor();
  // the class x split table as shown
  const table = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#class-split-table tbody tr')].map((tr) =>
    [tr.dataset.class, ['train', 'val', 'test', 'total'].map((k) => Number(tr.querySelector(`[data-split="${k}"]`).textContent.replace(/\D/g, '')))])));
  expect(Object.keys(table).length >= 8, 'classes in the table: ' + Object.keys(table).join(','));
  for (const [c, [tr, va, te, tot]] of Object.entries(table)) expect(tr + va + te === tot && tr > 0, `row ${c}: ${tr}+${va}+${te} != ${tot}`);
  const foot = (await page.locator('#class-split-table tfoot').innerText()).replace(/\s+/g, ' ');
  // each class is rounded on its own, so the totals are near the estimate, not always equal
  const [ftr, fva, fte, ftot] = (foot.match(/\d+/g) || []).map(Number);
  expect(ftot === 100 && ftr + fva + fte === 100 && Math.abs(ftr - 70) <= 3 && Math.abs(fva - 20) <= 3 && Math.abs(fte - 10) <= 3,
    'the totals row: ' + foot);
  result.table = table;
  result.version_hash = (await page.locator('#content-hash').innerText()).trim();
  expect(/^[0-9a-f]{64}$/.test(result.version_hash), 'content hash: ' + result.version_hash);
  await shot('versions_en');
  log('step version created with the sliders', JSON.stringify(s));

  // ---- download its export ----
  const [dl] = await Promise.all([page.waitForEvent('download'), page.locator('button[data-format="imagefolder"]').click()]);
  result.download = join(cfg.downloads, dl.suggestedFilename());
  await dl.saveAs(result.download);
  expect(dl.suggestedFilename() === 'v2 browser-imagefolder.zip' || /imagefolder\.zip$/.test(dl.suggestedFilename()), 'download name: ' + dl.suggestedFilename());
  expect(readFileSync(result.download).subarray(0, 2).toString() === 'PK', 'the download is not a zip');
  log('step export downloaded', dl.suggestedFilename(), readFileSync(result.download).length, 'bytes');

  // ---- delete: one for real, one that someone else deleted meanwhile (refused in words) ----
  await page.locator('#version-list [data-version="old copy"]').click();
  await page.locator('#ver-detail-h', { hasText: 'old copy' }).waitFor();
  await page.locator('#delete-version').click();
  await dialog().getByText('Delete version old copy?').waitFor();
  await page.locator('#confirm-ok').click();
  await toast(/Version old copy deleted/);
  await page.locator('#version-list [data-version="old copy"]').waitFor({ state: 'detached' });
  await page.locator('#version-list [data-version="baseline"]').click();
  await page.locator('#ver-detail-h', { hasText: 'baseline' }).waitFor();
  await page.locator('#delete-version').click();
  const baselineId = Number(new URL(page.url()).searchParams.get('v'));
  expect((await api(`/api/v1/dataset-versions/${baselineId}`, { method: 'DELETE' })).status === 204, 'deleting baseline through the API');
  await page.locator('#confirm-ok').click();
  await dialog().locator('.errorbox').getByText('This could not be found.').waitFor();
  await dialog().getByRole('button', { name: 'Cancel' }).click();
  log('step versions deleted; the refusal shown in words');

  // ---- members: add olga, change her role, the last owner cannot be demoted ----
  await page.locator('#tab-members').click();
  await page.locator('#member-table tr[data-user="admin"]').waitFor();
  await page.locator('#member-user').fill('olg');
  await page.locator('#member-user').fill('olga');
  await page.locator('#member-role').selectOption('annotator');
  await page.locator('#add-member').click();
  await toast(/olga added as Annotator/);
  const olgaRole = page.locator('#member-table tr[data-user="olga"] select');
  expect(await olgaRole.inputValue() === 'annotator', 'olga is not listed as annotator');
  await olgaRole.selectOption('reviewer');
  await toast(/olga is now Reviewer/);
  await shot('members_en');
  const adminRole = page.locator('#member-table tr[data-user="admin"] select');
  await adminRole.selectOption('viewer');
  await page.locator('#member-refused').getByText('A project needs at least one owner.').waitFor();
  const why = await page.locator('#member-refused .errorbox-detail').innerText();
  expect(/owner/.test(why), 'the last-owner refusal does not say why: ' + why);
  expect(await adminRole.inputValue() === 'owner', 'the refused role change is still shown');
  log('step member added and made reviewer; refusal:', why);

  // ---- administration: users ----
  await page.locator('.mainnav a[href="/admin"]').click();
  await page.locator('#user-table tr[data-user="admin"]').waitFor();
  await page.locator('#new-user').click();
  await page.locator('#nu-username').fill('kim.line3');
  await page.locator('#nu-password').fill('kim-first-pass');
  await dialog().getByRole('checkbox', { name: 'Annotator', exact: true }).uncheck();
  await dialog().getByRole('checkbox', { name: 'Operator', exact: true }).check();
  await dialog().getByRole('checkbox', { name: 'Viewer', exact: true }).check();
  await page.locator('#nu-create').click();
  await toast(/User kim.line3 created/);
  const kim = page.locator('#user-table tr[data-user="kim.line3"]');
  await kim.waitFor();
  expect(/Operator/.test(await kim.innerText()) && /Viewer/.test(await kim.innerText()), 'kim roles: ' + await kim.innerText());
  await kim.getByRole('button', { name: 'Roles of kim.line3' }).click();
  await dialog().getByRole('checkbox', { name: 'Reviewer', exact: true }).check();
  await page.locator('#roles-save').click();
  await toast(/Roles of kim.line3 saved/);
  await kim.getByRole('button', { name: 'Disable kim.line3?' }).click();
  await page.locator('#confirm-ok').click();
  await kim.locator('.badge', { hasText: 'Disabled' }).waitFor();
  await kim.getByRole('button', { name: 'Enable kim.line3' }).click();
  await kim.locator('.badge', { hasText: 'Active' }).waitFor();
  await kim.getByRole('button', { name: 'New password for kim.line3' }).click();
  await page.locator('#pw-new').fill('kim-second-pass');
  await dialog().getByRole('button', { name: 'Set password' }).click();
  await toast(/Password of kim.line3 changed/);
  // the last administrator keeps the role: refused in words, nothing changed
  await page.locator('#user-table tr[data-user="admin"]').getByRole('button', { name: 'Roles of admin' }).click();
  await dialog().getByRole('checkbox', { name: 'Administrator', exact: true }).uncheck();
  await dialog().getByRole('checkbox', { name: 'Engineer', exact: true }).check();
  await page.locator('#roles-save').click();
  await dialog().getByText('AutoCV needs at least one active administrator.').waitFor();
  await dialog().getByRole('button', { name: 'Cancel' }).click();
  // nobody deletes their own account: the button says so by being disabled
  expect(await page.locator('#user-table tr[data-user="admin"]').getByRole('button', { name: 'Delete admin?' }).isDisabled(), 'own delete enabled');
  await shot('admin_en');
  log('step user created, roles changed, disabled and enabled, password reset');

  // ---- API tokens: create (shown once), use, revoke ----
  await page.locator('#admin-tab-tokens').click();
  await page.locator('#token-table').waitFor();
  await page.locator('#token-name').fill('line 3 camera');
  await page.locator('#token-days').selectOption('30');
  await page.locator('#create-token').click();
  const value = await page.locator('#fresh-token-value').inputValue();
  expect(/^acv_[A-Za-z0-9_-]{43}$/.test(value), 'the new token: ' + value);
  const row = page.locator('#token-table tr[data-token="line 3 camera"]');
  await row.waitFor();
  expect(!(await row.innerText()).includes(value), 'the list shows the whole token');
  expect((await fetch(cfg.url + '/api/v1/auth/me', { headers: { Authorization: 'Bearer ' + value } })).status === 200, 'the new token does not work');
  await page.locator('#token-done').click();
  await page.locator('#fresh-token').waitFor({ state: 'detached' });
  expect(!(await page.content()).includes(value), 'the token is still on the page after "I have copied it"');
  await row.getByRole('button', { name: 'Revoke line 3 camera?' }).click();
  await page.locator('#confirm-ok').click();
  await toast(/Token line 3 camera revoked/);
  await row.waitFor({ state: 'detached' });
  await page.locator('#tokens-revoked').check();
  await page.locator('#token-table tr[data-token="line 3 camera"][data-state="revoked"]').waitFor();
  expect((await fetch(cfg.url + '/api/v1/auth/me', { headers: { Authorization: 'Bearer ' + value } })).status === 401, 'the revoked token still works');
  const created = await (await api('/api/v1/tokens?limit=100')).json();
  result.token = value;
  result.token_id = (await (await api('/api/v1/tokens?include_revoked=true&limit=100')).json()).items.find((k) => k.name === 'line 3 camera').id;
  expect(!created.items.some((k) => k.name === 'line 3 camera'), 'the revoked token is still listed as active');
  await shot('tokens_en');
  log('step token created, shown once, revoked');

  // ---- the audit log: these actions, by filter ----
  await page.locator('#admin-tab-audit').click();
  await page.locator('#audit-table').waitFor();
  const auditRows = (sel) => page.locator('#audit-table tbody tr' + sel);
  await page.locator('#audit-action').selectOption('revoke');
  await auditRows('[data-action="revoke"][data-target="token"]').first().waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll('#audit-table tbody tr')].every((r) => r.dataset.action === 'revoke'));
  expect(await auditRows('').count() === 1, 'revocations in the log: ' + await auditRows('').count());
  await page.locator('#audit-action').selectOption('create');
  await page.locator('#audit-target').selectOption('user');
  await page.waitForFunction(() => [...document.querySelectorAll('#audit-table tbody tr')].every((r) => r.dataset.target === 'user' && r.dataset.action === 'create'));
  expect(/kim\.line3/.test(await page.locator('#audit-table').innerText()), 'kim.line3 creation is not in the log');
  await page.locator('#audit-target').selectOption('member');
  await page.waitForFunction(() => [...document.querySelectorAll('#audit-table tbody tr')].every((r) => r.dataset.target === 'member'));
  expect(await auditRows('').count() === 1, 'member creations: ' + await auditRows('').count());
  // by user and date range: today, by admin; then a day in the past has nothing
  await page.locator('#audit-action').selectOption('');
  await page.locator('#audit-target').selectOption('dataset_version');
  const today = new Date(Date.now() - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 10);
  await page.locator('#audit-user').selectOption({ label: 'admin' });
  await page.locator('#audit-since').fill(today);
  await page.locator('#audit-until').fill(today);
  await page.waitForFunction(() => document.querySelectorAll('#audit-table tbody tr').length === 5 &&
    [...document.querySelectorAll('#audit-table tbody tr')].every((r) => r.dataset.target === 'dataset_version'));
  const acts = await page.evaluate(() => [...document.querySelectorAll('#audit-table tbody tr')].map((r) => r.dataset.action).sort().join(','));
  expect(acts === 'create,create,create,delete,delete', 'dataset version entries today: ' + acts);
  await shot('audit_en');
  await page.locator('#audit-until').fill('2000-01-01');
  await page.getByText('No entry matches these filters').waitFor();
  await page.getByRole('button', { name: 'Clear filters' }).click();
  await page.locator('#audit-table').waitFor();
  log('step the audit log shows the revocation, the new user, the member and the versions');

  // ---- import an ONNX model: refused with the reason, then accepted, then a second version ----
  await page.locator('.mainnav a[href="/models"]').click();
  await page.getByText('The repository is empty').waitFor();
  await page.locator('#import-model').click();
  await page.locator('#imp-file').setInputFiles(cfg.onnx);
  await page.locator('#imp-file-kind', { hasText: 'ONNX' }).waitFor();
  expect(await page.locator('#imp-name').inputValue() === 'line3-tiny', 'the name is not taken from the file: ' + await page.locator('#imp-name').inputValue());
  await page.locator('#imp-classes').fill('ok\nscratch');
  await page.locator('#imp-norm').selectOption('unit');
  expect(await page.locator('#imp-mean').inputValue() === '0,0,0' && await page.locator('#imp-std').inputValue() === '1,1,1', 'the normalization preset');
  await page.locator('#imp-description').fill('from the line 3 PC');
  await page.locator('#imp-tags').fill('baseline');
  await page.locator('#imp-classes').focus();
  await page.evaluate(() => document.querySelector('dialog[open] .modal-body').scrollTo(0, 0));
  await shot('models_import_en', { keepScroll: true });
  await page.locator('#imp-submit').click();
  await page.locator('#imp-refused').waitFor({ timeout: 20000 });
  const reason = await page.locator('#imp-refused .errorbox-detail').innerText();
  expect(/class/i.test(reason) && /2|3/.test(reason), 'the refusal does not give the reason: ' + reason);
  expect((await (await api('/api/v1/models')).json()).total === 0, 'a refused model was stored');
  await page.locator('#imp-classes').fill('ok\nscratch\ndent');
  await page.locator('#imp-submit').click();
  await toast(/line3-tiny version 1 imported/);
  await page.locator('#model-table tr[data-model="line3-tiny"]').waitFor();
  // a second version of the existing model, class names read from a file, ImageNet normalization
  await page.locator('#import-model').click();
  await dialog().getByLabel('A new version of an existing model').check();
  await page.locator('#imp-existing').selectOption('line3-tiny');
  await dialog().getByText('It becomes version 2').waitFor();
  await page.locator('#imp-file').setInputFiles(cfg.onnx);
  await dialog().getByLabel('Read from a file…').setInputFiles(cfg.classes_file);
  await dialog().getByText('3 classes').waitFor();
  await page.locator('#imp-submit').click();
  await toast(/line3-tiny version 2 imported/);
  const mrow = await page.locator('#model-table tr[data-model="line3-tiny"]').innerText();
  expect(/v2/.test(mrow), 'the model row: ' + mrow);
  log('step ONNX model imported (refused first:', reason + ')');

  // ---- evaluate the imported model on the quality team's standard test set ----
  // it has no project of its own: the dataset versions of every project are offered, by project
  await page.locator('#model-table tr[data-model="line3-tiny"] a').click();
  await page.getByRole('heading', { name: 'Version 2' }).waitFor();
  await page.locator('#eval-dv optgroup').first().waitFor({ state: 'attached' });
  const offered = await page.locator('#eval-dv optgroup').evaluateAll((gs) => gs.map((g) => g.label + ': ' +
    [...g.querySelectorAll('option')].map((o) => o.textContent.trim()).join(' | ')));
  expect(/^Garment line: v2 browser · \d+ classes \/ Tray quality: standard test set · 3 classes$/.test(offered.join(' / ')),
    'the test sets offered: ' + offered.join(' / '));
  const mismatch = page.locator('#eval-mismatch');
  // another project's garment classes: said before evaluating, then refused in words
  await page.locator('#eval-dv').selectOption({ index: 0 });
  await mismatch.getByText('Model: dent, ok, scratch').waitFor();
  await mismatch.getByText(/^Not in the model: bag, boot, coat/).waitFor();
  await page.locator('#eval-run').click();
  await page.locator('#eval-error').getByText('Something in what was entered is not right.').waitFor();
  const refusal = await page.locator('#eval-error .errorbox-detail').innerText();
  expect(/not one of the model/.test(refusal), 'the refusal does not say why: ' + refusal);
  // version 1 names the same classes in another order: matched by name, evaluated
  await page.getByRole('button', { name: /^v1 / }).click();
  await page.getByRole('heading', { name: 'Version 1' }).waitFor();
  await page.locator('#eval-error .errorbox').waitFor({ state: 'detached' });
  await page.locator('#eval-dv').selectOption(String(cfg.tray_version));
  await mismatch.waitFor({ state: 'detached' });
  await page.locator('#eval-run').click();
  await page.locator('.report').getByText('Latency p50').waitFor({ timeout: 120000 });
  // version 2: the chosen test set stays
  await page.getByRole('button', { name: /^v2 / }).click();
  await page.getByRole('heading', { name: 'Version 2' }).waitFor();
  await mismatch.waitFor({ state: 'detached' });
  expect(await page.locator('#eval-dv').inputValue() === String(cfg.tray_version), 'the chosen test set was not kept');
  const testOption = await page.locator('#eval-split option[value="test"]').innerText();
  expect(/^Test \(\d+\)$/.test(testOption), 'the test split does not say how many images: ' + testOption);
  await page.locator('#eval-run').click();
  await toast(/Evaluation started/);
  await page.locator('.report').getByText('Latency p50').waitFor({ timeout: 120000 });
  const top1 = (await page.locator('.report .tile-stat', { hasText: 'Accuracy' }).locator('strong').innerText()).trim();
  expect(/^\d+(\.\d)?%$/.test(top1), 'the accuracy shown: ' + top1);
  result.eval_top1 = Number(top1.replace('%', ''));
  await page.locator('section:has(#eval-h) li', { hasText: 'Test split of standard test set (Tray quality)' }).getByText('Succeeded').waitFor();
  await a11y(page, 'model');
  log('step the imported model evaluated on another project\'s test set:', top1, '(refused first:', refusal + ')');
  await page.locator('.mainnav a[href="/models"]').click();
  await page.locator('#model-table').waitFor();

  // ---- 简体中文: the same screens ----
  await page.locator('#lang-select').selectOption('zh');
  await page.getByRole('heading', { name: '模型仓库' }).waitFor();
  await page.locator('#import-model').click();
  await page.locator('#imp-file').setInputFiles(cfg.onnx);
  await page.locator('#imp-name').fill('tray-classifier');
  await page.locator('#imp-classes').fill('ok\nscratch\ndent');
  await page.locator('#imp-description').fill('ResNet-18 from PyTorch');
  await dialog().getByText('3 个类别').waitFor();
  await page.evaluate(() => document.querySelector('dialog[open] .modal-body').scrollTo(0, 0));
  await shot('models_import_zh', { keepScroll: true });
  await dialog().getByRole('button', { name: '取消' }).click();
  await page.goto(P + '/versions');
  await page.locator('#class-split-table').waitFor();
  await page.getByRole('heading', { name: '各类别、各划分的图像数' }).waitFor();
  await shot('versions_zh');
  await page.goto(P + '/members');
  await page.locator('#member-table tr[data-user="olga"]').waitFor();
  await page.getByRole('heading', { name: '各角色的权限' }).waitFor();
  await shot('members_zh');
  await page.goto(cfg.url + '/admin/users');
  await page.locator('#user-table tr[data-user="kim.line3"]').waitFor();
  await page.getByRole('heading', { name: '系统管理' }).waitFor();
  await shot('admin_zh');
  await page.goto(cfg.url + '/admin/tokens');
  await page.locator('#token-table').waitFor();
  await page.locator('#tokens-revoked').check();
  await page.locator('#token-table tr[data-token="line 3 camera"][data-state="revoked"]').waitFor();
  await page.getByRole('heading', { name: '系统管理' }).waitFor();
  await shot('tokens_zh');
  await page.goto(cfg.url + '/admin/audit');
  await page.locator('#audit-table').waitFor();
  await page.getByRole('columnheader', { name: '时间' }).waitFor();
  await shot('audit_zh');
  await page.locator('#lang-select').selectOption('en');
  log('step the screens in Chinese');
}

await main(run, {
  browser, page: () => page, errors: pageErrors, shots: cfg.shots, failure: 'failure_admin_versions', fullPage: true,
  report: () => ({ RESULT: result }),
});
