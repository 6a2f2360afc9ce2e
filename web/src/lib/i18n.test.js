// The translations (i18n.svelte.js and locales/): every message in both languages is ICU
// MessageFormat that intl-messageformat parses, English and Chinese use the same placeholders
// (and the same kind: a count in one is a count in the other), counts pick the right form and
// are written with the language's grouping, plain placeholders are filled as given, and the
// fallbacks (English for a key Chinese lacks, the key itself for an unknown one) and the
// handling of a broken message work. The module reads the browser (navigator, localStorage,
// document) when it loads, so those are stand-ins, and a few messages only for this test are
// added to the English dictionary with vi.mock.
import { describe, it, expect, vi, beforeAll, beforeEach, afterEach } from 'vitest';
import { IntlMessageFormat } from 'intl-messageformat';
import { parse, TYPE } from '@formatjs/icu-messageformat-parser';

const EXTRA = vi.hoisted(() => ({
  en: {
    'test.apostrophe': "The operator's set: {name}'s images can't wait",
    'test.angle': 'Scores < 0.5 or > 0.9 are <b>flagged</b> -> {name} <review>',
    'test.enOnly': 'Only in English: {n, plural, one {# image} other {# images}}',
    'test.broken': 'Broken {n, plural, one {# image}',
  },
}));

vi.mock('./locales/en.js', async (importOriginal) => {
  const m = await importOriginal();
  return { default: { ...m.default, ...EXTRA.en } };
});

// ---- the dictionaries as written (not the mocked one) --------------------------------------

const LOCALE = { en: 'en-US', zh: 'zh-CN' };
const OPTIONS = { ignoreTag: true };

async function dictionaries() {
  const out = {
    'en.js + zh.js': {
      en: (await vi.importActual('./locales/en.js')).default,
      zh: (await vi.importActual('./locales/zh.js')).default,
    },
  };
  for (const [path, m] of Object.entries(import.meta.glob('./locales/parts/*.js', { eager: true })))
    out[path.replace('./locales/', '')] = { en: m.en, zh: m.zh };
  return out;
}

// argument name -> 'count' (plural, number) or the element kind, from the parsed message
function argsOf(ast, out = {}) {
  for (const el of ast) {
    if (el.type === TYPE.plural || el.type === TYPE.number) out[el.value] = 'count';
    else if (el.type === TYPE.argument) out[el.value] ??= 'text';
    else if (el.type === TYPE.select || el.type === TYPE.date || el.type === TYPE.time) out[el.value] = TYPE[el.type];
    if (el.options) for (const o of Object.values(el.options)) argsOf(o.value, out);
  }
  return out;
}

describe('the dictionaries', () => {
  let dicts;
  beforeAll(async () => {
    dicts = await dictionaries();
  });

  it('are all there: the main files and the parts, each with many messages', () => {
    expect(Object.keys(dicts)).toEqual(expect.arrayContaining(['en.js + zh.js', 'parts/ws.js', 'parts/ann.js', 'parts/adm.js']));
    for (const [file, { en, zh }] of Object.entries(dicts)) {
      expect(Object.keys(en).length, file).toBeGreaterThan(50);
      expect(Object.keys(zh).sort(), file).toEqual(Object.keys(en).sort());
    }
  });

  it('have no "<key>.one" singular keys left: counts are ICU plurals', () => {
    const left = Object.values(dicts).flatMap(({ en, zh }) => [...Object.keys(en), ...Object.keys(zh)]).filter((k) => k.endsWith('.one'));
    expect(left).toEqual([]);
  });

  it('parse as ICU MessageFormat in both languages', () => {
    const bad = [];
    for (const [file, d] of Object.entries(dicts))
      for (const code of ['en', 'zh'])
        for (const [key, msg] of Object.entries(d[code])) {
          try {
            parse(msg, OPTIONS);
            new IntlMessageFormat(msg, LOCALE[code], undefined, OPTIONS);
          } catch (e) {
            bad.push(`${file} ${code} ${key}: ${e.message}`);
          }
        }
    expect(bad).toEqual([]);
  });

  it('use no ICU quoting by accident (a straight apostrophe before { } # or \')', () => {
    // '{' would be a literal brace and '' an apostrophe: the texts use ’ for an apostrophe
    const quoted = [];
    for (const [file, d] of Object.entries(dicts))
      for (const code of ['en', 'zh'])
        for (const [key, msg] of Object.entries(d[code])) if (/'[{}#']/.test(msg)) quoted.push(`${file} ${code} ${key}`);
    expect(quoted).toEqual([]);
  });

  it('have the same placeholders, of the same kind, in English and Chinese', () => {
    const differ = [];
    let withArgs = 0;
    for (const [file, { en, zh }] of Object.entries(dicts))
      for (const key of Object.keys(en)) {
        const a = argsOf(parse(en[key], OPTIONS));
        const b = argsOf(parse(zh[key] ?? '', OPTIONS));
        if (Object.keys(a).length) withArgs++;
        if (JSON.stringify(Object.entries(a).sort()) !== JSON.stringify(Object.entries(b).sort()))
          differ.push(`${file} ${key}: en ${JSON.stringify(a)} zh ${JSON.stringify(b)}`);
      }
    expect(differ).toEqual([]);
    expect(withArgs).toBeGreaterThan(100);
  });

  it('see a dropped or extra placeholder (the check above can fail)', () => {
    expect(argsOf(parse('{n, plural, one {# file of {name}} other {# files of {name}}}', OPTIONS))).toEqual({ n: 'count', name: 'text' });
    expect(argsOf(parse('{name} 中有 {n} 个文件', OPTIONS))).toEqual({ name: 'text', n: 'text' });
  });
});

// ---- t() ---------------------------------------------------------------------------------

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
}

let i18n;
let errors;
beforeAll(async () => {
  vi.stubGlobal('navigator', { language: 'en-US' });
  vi.stubGlobal('localStorage', memoryStorage());
  vi.stubGlobal('document', { documentElement: { lang: '' } });
  i18n = await import('./i18n.svelte.js');
});
beforeEach(() => {
  i18n.setLang('en');
  errors = vi.spyOn(console, 'error').mockImplementation(() => {});
});
afterEach(() => {
  errors.mockRestore();
});

function inBoth(key, params) {
  i18n.setLang('en');
  const en = i18n.t(key, params);
  i18n.setLang('zh');
  const zh = i18n.t(key, params);
  i18n.setLang('en');
  return [en, zh];
}

describe('t()', () => {
  it('keeps its exports and the language switch', () => {
    expect(i18n.LANGS.map((l) => l.code)).toEqual(['en', 'zh']);
    i18n.setLang('zh');
    expect(i18n.lang.code).toBe('zh');
    expect(i18n.locale()).toBe('zh-CN');
    expect(document.documentElement.lang).toBe('zh-CN');
    expect(i18n.t('common.cancel')).toBe('取消');
    i18n.setLang('en');
    expect(i18n.locale()).toBe('en-US');
    expect(i18n.t('common.cancel')).toBe('Cancel');
  });

  it('picks the singular or plural form and writes the count with grouping', () => {
    const cases = {
      'home.labels': [['0 labels', '0 个标签'], ['1 label', '1 个标签'], ['2 labels', '2 个标签'], ['1,234 labels', '1,234 个标签']],
      'data.count': [['0 images', '0 张图片'], ['1 image', '1 张图片'], ['2 images', '2 张图片'], ['1,234 images', '1,234 张图片']],
      'ann.split.people.n': [['0 people', '0 人'], ['1 person', '1 人'], ['2 people', '2 人'], ['1,234 people', '1,234 人']],
      'labels.imported': [['0 labels imported', '已导入 0 个标签'], ['1 label imported', '已导入 1 个标签'], ['2 labels imported', '已导入 2 个标签'], ['1,234 labels imported', '已导入 1,234 个标签']],
      // Chinese words the single file differently
      'data.skipped.show': [['Show the 0 skipped files', '查看跳过的 0 个文件'], ['Show the skipped file', '查看跳过的文件'], ['Show the 2 skipped files', '查看跳过的 2 个文件'], ['Show the 1,234 skipped files', '查看跳过的 1,234 个文件']],
    };
    for (const [key, want] of Object.entries(cases))
      [0, 1, 2, 1234].forEach((n, i) => expect(inBoth(key, { n }), `${key} n=${n}`).toEqual(want[i]));
    expect(errors).not.toHaveBeenCalled();
  });

  it('fills the other placeholders of a plural message', () => {
    expect(inBoth('data.skipped.title', { n: 1, name: 'a.zip' })).toEqual(['1 file of a.zip was not imported', 'a.zip 中有 1 个文件未导入']);
    expect(inBoth('data.skipped.title', { n: 1500, name: 'a.zip' })).toEqual(['1,500 files of a.zip were not imported', 'a.zip 中有 1,500 个文件未导入']);
    expect(inBoth('ann.my.tasks', { n: 1, names: 'T1' })).toEqual(['task: T1', '任务：T1']);
    expect(inBoth('ann.my.tasks', { n: 2, names: 'T1, T2' })).toEqual(['2 tasks: T1, T2', '2 个任务：T1, T2']);
    expect(inBoth('ws.canvas.label', { name: 'a.png', w: 1920, h: 1080, n: 1 })).toEqual(['a.png, 1920 × 1080 pixels, one shape', 'a.png，1920 × 1080 像素，1 个形状']);
    expect(inBoth('ws.canvas.label', { name: 'a.png', w: 1920, h: 1080, n: 1234 })).toEqual(['a.png, 1920 × 1080 pixels, 1,234 shapes', 'a.png，1920 × 1080 像素，1,234 个形状']);
    expect(inBoth('ws.submit.ask', { n: 1 })[1]).toBe('这张图片上还有 1 个模型预标注没有确认。提交会按现状确认它。');
    expect(inBoth('ws.submit.ask', { n: 3 })[1]).toBe('这张图片上还有 3 个模型预标注没有确认。提交会按现状全部确认。');
    expect(errors).not.toHaveBeenCalled();
  });

  it('writes a plain placeholder as given: ids, sizes and preformatted text keep their form', () => {
    expect(inBoth('job.title', { id: 12345 })).toEqual(['Job #12345', '任务 #12345']);
    expect(inBoth('ws.backto', { name: '2024-01 batch' })[0]).toBe('Back to 2024-01 batch');
    expect(inBoth('data.skipped.unlisted', { n: 1, listed: '1,000' })[0]).toBe('1 more file was left out; the server lists the first 1,000.');
    expect(inBoth('data.skipped.unlisted', { n: 2001, listed: '1,000' })[1]).toBe('另有 2,001 个文件被跳过；服务器只列出前 1,000 个。');
    expect(errors).not.toHaveBeenCalled();
  });

  it('falls back to English for a key Chinese lacks (with English plural rules), then to the key', () => {
    i18n.setLang('zh');
    expect(i18n.t('test.enOnly', { n: 1 })).toBe('Only in English: 1 image');
    expect(i18n.t('test.enOnly', { n: 1234 })).toBe('Only in English: 1,234 images');
    expect(i18n.t('no.such.key')).toBe('no.such.key');
    expect(i18n.t('no.such.key', { n: 1 })).toBe('no.such.key');
    i18n.setLang('en');
    expect(i18n.t('no.such.key', { n: 2 })).toBe('no.such.key');
    expect(errors).not.toHaveBeenCalled();
  });

  it('keeps apostrophes and < > as they are written', () => {
    expect(i18n.t('test.apostrophe', { name: 'Line 3' })).toBe("The operator's set: Line 3's images can't wait");
    expect(i18n.t('test.angle', { name: 'x' })).toBe('Scores < 0.5 or > 0.9 are <b>flagged</b> -> x <review>');
    expect(errors).not.toHaveBeenCalled();
  });

  it('shows a message that does not parse as it is written and reports it once', () => {
    expect(i18n.t('test.broken', { n: 2 })).toBe('Broken {n, plural, one {# image}');
    expect(i18n.t('test.broken', { n: 3 })).toBe('Broken {n, plural, one {# image}');
    expect(errors).toHaveBeenCalledTimes(1);
    expect(String(errors.mock.calls[0][0])).toContain('test.broken');
  });

  it('leaves a placeholder without a value as it is written, as before', () => {
    expect(i18n.t('ws.backto')).toBe('Back to {name}');
    expect(i18n.t('ws.backto', {})).toBe('Back to {name}');
  });

  it('still counts right when given a count as text (and reports the call)', () => {
    expect(i18n.t('home.labels', { n: '1,234' })).toBe('1,234 labels');
    expect(i18n.t('home.labels', { n: '1' })).toBe('1 label');
    expect(errors).toHaveBeenCalledTimes(1);
    expect(String(errors.mock.calls[0][0])).toContain('home.labels');
  });
});
