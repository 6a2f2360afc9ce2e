// What the browser tests (flow.mjs, workspace.mjs, annotation_review.mjs, admin_versions.mjs)
// share: the configuration their Python wrapper writes, the step log, the checks, Debian's
// chromium started with playwright-core, pages that collect the page's errors, signing in,
// the accessibility check run on every screenshot, the dictionary key check, and the run
// itself (RESULT / FIGURES lines on success; on failure the error, the page's errors and a
// screenshot of the page at that moment, and a non-zero exit).
import { createRequire } from 'node:module';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

// ---- the configuration (argv[2], written by the wrapper); the screenshot folder made ----
export function loadConfig() {
  const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  mkdirSync(cfg.shots, { recursive: true });
  return cfg;
}

// ---- the step log and the checks ----
export const t0 = Date.now();
export const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
export const fail = (msg) => {
  throw new Error(msg);
};
export const expect = (cond, msg) => cond || fail(msg);

// ---- a dictionary part (locales/parts/NAME): it exports en and zh with the same keys ----
export async function localePart(locales, name) {
  const m = await import(pathToFileURL(join(locales, 'parts', name)).href);
  expect(m.en && m.zh, `locales/parts/${name} must export en and zh`);
  const a = Object.keys(m.en), b = Object.keys(m.zh);
  const miss = a.filter((k) => !(k in m.zh)).concat(b.filter((k) => !(k in m.en)));
  expect(miss.length === 0, `locales/parts/${name}: en and zh differ in keys: ` + miss.join(', '));
  return m;
}

// ---- the browser, and pages that collect the page's errors ----
export function launch(cfg) {
  return chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run'],
  });
}

// A page in a context of its own (a person's browser profile), English, 1360 x 860. Uncaught
// errors and console errors go to `errors` (prefixed with `who: ` when given); a failed resource
// (an error answer some tests provoke on purpose) is not an error of the page.
export async function openPage(browser, errors, { who = '', timeout = 15000, context: extra = {} } = {}) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 860 }, locale: 'en-US', ...extra });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  const prefix = who ? `${who}: ` : '';
  page.on('pageerror', (e) => errors.push(prefix + String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(`${prefix}console: ${m.text()}`);
  });
  return page;
}

// ---- signing in on the sign-in screen; `open` loads it first, `until` is what shows that it
// worked ('hello': the home page greets the user; 'topbar': the signed-in frame) ----
export async function signIn(page, url, username, password, { open = true, until = 'hello' } = {}) {
  if (open) await page.goto(url + '/');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  if (until === 'hello') await page.getByRole('heading', { name: `Hello, ${username}` }).waitFor();
  else await page.locator('.topbar').waitFor();
}

// The server's login through the API, for what a person would do elsewhere: the token.
export async function apiLogin(url, username, password) {
  const res = await fetch(url + '/api/v1/auth/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  return (await res.json()).token;
}

// ---- accessibility: every visible control has an accessible name (a label, aria-label or
// text) and is reachable by keyboard (no positive tabindex, not taken out of the tab order).
// `skip`: ids of controls opened by their labelled buttons (hidden file inputs); `width`: how
// much of an offending element's HTML the message quotes ----
export async function a11y(page, screen, { skip = [], width = 120 } = {}) {
  const bad = await page.evaluate(({ skip, width }) => {
    const out = [];
    const visible = (el) => el.offsetParent !== null || el.getClientRects().length > 0;
    for (const el of document.querySelectorAll('button, a[href], input, select, textarea, [role="button"]')) {
      if (!visible(el) || el.type === 'hidden') continue;
      if (el.id && skip.includes(el.id)) continue;
      const name = (el.getAttribute('aria-label') || '').trim() || (el.labels && [...el.labels].map((l) => l.textContent).join(' ').trim()) ||
        (el.getAttribute('aria-labelledby') ? 'by-id' : '') || (el.tagName !== 'INPUT' && el.textContent.trim()) || (el.getAttribute('title') || '').trim();
      if (!name) out.push(el.outerHTML.slice(0, width));
      if (el.tabIndex > 0 || el.getAttribute('tabindex') === '-1') out.push('not in the tab order: ' + el.outerHTML.slice(0, width));
    }
    return out;
  }, { skip, width });
  expect(bad.length === 0, `${screen}: controls without an accessible name or keyboard access:\n` + bad.join('\n'));
}

// ---- a screenshot (SHOTS/ui_NAME.png) of the screen as a person sees it, after the
// accessibility check: notices hidden, nothing focused and scrolled to the top unless asked
// otherwise (or the pointer moved aside, so that nothing is highlighted by hovering) ----
export async function screenshot(page, shots, name, {
  fullPage = false, keepScroll = false, keepFocus = false, pointer = null, settle = 250, a11y: check = {},
} = {}) {
  await a11y(page, name, check);
  if (!keepFocus || !keepScroll) {
    await page.evaluate(({ keepFocus, keepScroll }) => {
      if (!keepFocus) document.activeElement && document.activeElement.blur && document.activeElement.blur();
      if (!keepScroll) window.scrollTo(0, 0);
    }, { keepFocus, keepScroll });
  }
  if (pointer) await page.mouse.move(pointer[0], pointer[1]);
  await page.waitForTimeout(settle); // let transitions settle
  await page.screenshot({ path: join(shots, `ui_${name}.png`), fullPage, style: '.toasts { display: none; }' });
}

// ---- a pre-annotation job shown on the annotation page (#pre-job, data-status): waits until
// it succeeded (failing with its text if it failed or was cancelled, or after `seconds`);
// returns the statuses seen on the way and the job's id ----
export async function waitPreJob(page, seconds) {
  const states = new Set();
  for (const deadline = Date.now() + seconds * 1000; ;) {
    const st = await page.locator('#pre-job').getAttribute('data-status', { timeout: 1000 }).catch(() => null);
    if (st) states.add(st);
    if (st === 'succeeded') break;
    expect(st !== 'failed' && st !== 'cancelled', 'the pre-annotation job ended ' + st + ': ' + (await page.locator('#pre-job').innerText()));
    expect(Date.now() < deadline, `the pre-annotation did not finish in ${seconds} s`);
    await page.waitForTimeout(100);
  }
  return { states, id: Number((await page.locator('#pre-job').innerText()).match(/Job (\d+)/)[1]) };
}

// ---- the run: `run()`, then no error in the pages, then one line per entry of `report()`
// ("RESULT {json}", "FIGURES {json}"); on failure the error, the pages' errors, a screenshot
// (and the HTML) of `page()` at that moment in SHOTS/FAILURE.png, and exit status 1 ----
export async function main(run, { browser, page, errors, shots, report, failure = 'failure', fullPage = false }) {
  try {
    await run();
    expect(errors.length === 0, 'errors in the page:\n' + errors.join('\n'));
    for (const [tag, value] of Object.entries(report())) console.log(tag + ' ' + JSON.stringify(value));
    await browser.close();
  } catch (e) {
    console.log('FAILED: ' + (e && e.stack ? e.stack : e));
    if (errors.length) console.log('page errors:\n' + errors.join('\n'));
    try {
      const p = page();
      if (p) {
        await p.screenshot({ path: join(shots, `${failure}.png`), fullPage });
        writeFileSync(join(shots, `${failure}.html`), await p.content());
        console.log('the page at the failure: ' + join(shots, `${failure}.png`));
      }
    } catch {
      /* the browser is gone */
    }
    await browser.close();
    process.exit(1);
  }
}
