// Mask RLE in both of the server's encodings: vectors worked by hand from pycocotools'
// rleToString (the same ones the C unit test checks), column-major order, round trips over
// random masks, crops, and the errors the server would give.
import { describe, it, expect } from 'vitest';
import {
  runsToString, stringToRuns, decodeCounts, checkRuns, runsArea,
  encodeMask, encodeCrop, decodeMask, decodeCrop, cropBounds,
} from './rle.js';

// A reference encoder written the slow, obvious way: walk the pixels column by column.
function slowEncode(bits, h, w) {
  const runs = [];
  let cur = 0;
  let run = 0;
  for (let x = 0; x < w; x++)
    for (let y = 0; y < h; y++) {
      const v = bits[y * w + x] ? 1 : 0;
      if (v !== cur) {
        runs.push(run);
        run = 0;
        cur = v;
      }
      run++;
    }
  runs.push(run);
  return runs;
}

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('compressed string', () => {
  it('encodes the hand-worked vectors', () => {
    // 0 -> '0'; 10 -> ':'; 5 -> '5'; fourth value as a delta: 1 - 10 = -9 -> 23 + 0x10 sign = 'G'
    expect(runsToString([0, 10, 5, 1])).toBe('0:5G');
    // 2, 3, 4, then 5 - 3 = 2
    expect(runsToString([2, 3, 4, 5])).toBe('2342');
    // 16 needs two groups: 16 has the sign bit set, so a continuation '`' (0x20 + 16 + 48) and '0'
    expect(runsToString([16])).toBe('`0');
    // 32 = 0 + 1 * 32: 'P' (0x20 + 48) then '1'
    expect(runsToString([32])).toBe('P1');
    // 15 fits in one group without the sign bit
    expect(runsToString([15])).toBe('?');
    expect(runsToString([])).toBe('');
  });

  it('decodes the hand-worked vectors', () => {
    expect(stringToRuns('0:5G')).toEqual([0, 10, 5, 1]);
    expect(stringToRuns('2342')).toEqual([2, 3, 4, 5]);
    expect(stringToRuns('`0')).toEqual([16]);
    expect(stringToRuns('P1')).toEqual([32]);
    expect(stringToRuns('')).toEqual([]);
  });

  it('round-trips large and irregular runs', () => {
    const cases = [[100000, 1], [12000000], [0, 12000000], [5, 0, 7, 0, 9], [1, 2, 3, 4, 5, 6, 1000, 1, 999999, 3]];
    const r = rng(1);
    cases.push(Array.from({ length: 500 }, () => Math.floor(r() * 5000)));
    for (const runs of cases) expect(stringToRuns(runsToString(runs))).toEqual(runs);
  });

  it('refuses what is not COCO RLE', () => {
    expect(() => stringToRuns('0 1')).toThrow(/character 1/);
    expect(() => stringToRuns('P')).toThrow(/ends inside a value/);
    expect(() => stringToRuns('000G')).toThrow(/decodes to -9/); // 0 + (-9)
    expect(() => stringToRuns('~')).toThrow(/not part of/); // 126 - 48 = 78 > 63
  });

  it('decodeCounts takes both encodings', () => {
    expect(decodeCounts([3, 0, 9])).toEqual([3, 0, 9]);
    expect(decodeCounts('0:5G')).toEqual([0, 10, 5, 1]);
    expect(() => decodeCounts([1, -2])).toThrow(/counts\[1\]/);
    expect(() => decodeCounts([1.5])).toThrow(/counts\[0\]/);
    expect(() => decodeCounts(7)).toThrow(/list of run lengths/);
  });
});

describe('bitmaps', () => {
  it('walks the pixels in column-major order', () => {
    // 2 rows x 3 columns, row-major:
    //   1 0 0
    //   1 1 0
    // column-major stream: (0,0)=1 (0,1)=1 | (1,0)=0 (1,1)=1 | (2,0)=0 (2,1)=0
    //   -> 1 1 0 1 0 0 -> runs: 0 background, 2 set, 1 clear, 1 set, 2 clear
    const bits = Uint8Array.from([1, 0, 0, 1, 1, 0]);
    expect(encodeMask(bits, 2, 3)).toEqual([0, 2, 1, 1, 2]);
    expect(Array.from(decodeMask([0, 2, 1, 1, 2], 2, 3))).toEqual([1, 0, 0, 1, 1, 0]);
    expect(Array.from(decodeMask(runsToString([0, 2, 1, 1, 2]), 2, 3))).toEqual([1, 0, 0, 1, 1, 0]);
  });

  it('encodes an empty and a full image', () => {
    expect(encodeMask(new Uint8Array(12), 3, 4)).toEqual([12]);
    expect(encodeMask(new Uint8Array(12).fill(1), 3, 4)).toEqual([0, 12]);
    expect(checkRuns([12], 3, 4)).toMatch(/empty/);
    expect(checkRuns([0, 12], 3, 4)).toBe(null);
    expect(checkRuns([0, 11], 3, 4)).toMatch(/11 pixels/);
  });

  it('round-trips random masks and matches the obvious encoder', () => {
    const r = rng(42);
    for (let t = 0; t < 60; t++) {
      const h = 1 + Math.floor(r() * 17);
      const w = 1 + Math.floor(r() * 23);
      const density = r();
      const bits = Uint8Array.from({ length: h * w }, () => (r() < density ? 1 : 0));
      const runs = encodeMask(bits, h, w);
      expect(runs).toEqual(slowEncode(bits, h, w));
      expect(runs.reduce((a, b) => a + b, 0)).toBe(h * w);
      expect(runsArea(runs)).toBe(bits.reduce((a, b) => a + b, 0));
      expect(decodeMask(runs, h, w)).toEqual(bits);
      expect(decodeMask(runsToString(runs), h, w)).toEqual(bits);
    }
  });

  it('encodes a crop placed in the image like the whole bitmap', () => {
    const r = rng(7);
    for (let t = 0; t < 60; t++) {
      const H = 3 + Math.floor(r() * 20);
      const W = 3 + Math.floor(r() * 20);
      const cw = 1 + Math.floor(r() * W);
      const ch = 1 + Math.floor(r() * H);
      const cx = Math.floor(r() * (W - cw + 1));
      const cy = Math.floor(r() * (H - ch + 1));
      const crop = { x: cx, y: cy, w: cw, h: ch, bits: Uint8Array.from({ length: cw * ch }, () => (r() < 0.5 ? 1 : 0)) };
      const full = new Uint8Array(H * W);
      for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) full[(cy + y) * W + cx + x] = crop.bits[y * cw + x];
      expect(encodeCrop(crop, H, W)).toEqual(slowEncode(full, H, W));
      // the crop bounds as a walking limit give the same runs
      const b = cropBounds(crop);
      if (b) expect(encodeMask(full, H, W, b)).toEqual(slowEncode(full, H, W));
    }
  });

  it('ignores the part of a crop outside the image', () => {
    const crop = { x: -1, y: -1, w: 3, h: 3, bits: new Uint8Array(9).fill(1) };
    // only the pixels (0,0), (1,0), (0,1), (1,1) of a 3x3 image are inside
    const full = Uint8Array.from([1, 1, 0, 1, 1, 0, 0, 0, 0]);
    expect(encodeCrop(crop, 3, 3)).toEqual(slowEncode(full, 3, 3));
  });

  it('decodes to the bounding-box crop', () => {
    // 4 x 5 image with set pixels at (x=1, y=2), (x=3, y=1), (x=3, y=2)
    const H = 4;
    const W = 5;
    const full = new Uint8Array(H * W);
    full[2 * W + 1] = 1;
    full[1 * W + 3] = 1;
    full[2 * W + 3] = 1;
    const c = decodeCrop(encodeMask(full, H, W), H, W);
    expect([c.x, c.y, c.w, c.h, c.area]).toEqual([1, 1, 3, 2, 3]);
    expect(Array.from(c.bits)).toEqual([0, 0, 1, 1, 0, 1]);
    expect(decodeCrop([H * W], H, W)).toBe(null);
    expect(() => decodeCrop([3, 4], H, W)).toThrow(/7 pixels/);
  });

  it('crops a run that wraps from one column to the next to every row', () => {
    // 3 rows x 2 columns: the last pixel of column 0 and the first of column 1 set
    const c = decodeCrop([2, 2, 2], 3, 2);
    expect([c.x, c.y, c.w, c.h]).toEqual([0, 0, 2, 3]);
    expect(Array.from(c.bits)).toEqual([0, 1, 0, 0, 1, 0]);
  });

  it('round-trips crops of random masks through the runs', () => {
    const r = rng(99);
    for (let t = 0; t < 40; t++) {
      const H = 1 + Math.floor(r() * 30);
      const W = 1 + Math.floor(r() * 30);
      const full = new Uint8Array(H * W);
      const n = Math.floor(r() * 6);
      for (let k = 0; k < n; k++) full[Math.floor(r() * H * W)] = 1;
      const runs = encodeMask(full, H, W);
      const c = decodeCrop(runs, H, W);
      if (!full.some((v) => v)) {
        expect(c).toBe(null);
        continue;
      }
      expect(cropBounds(c)).toEqual({ x: c.x, y: c.y, w: c.w, h: c.h });
      expect(encodeCrop(c, H, W)).toEqual(runs);
    }
  });

  it('handles a 4000 x 3000 mask quickly through a crop', () => {
    const H = 3000;
    const W = 4000;
    const crop = { x: 1000, y: 500, w: 200, h: 100, bits: new Uint8Array(200 * 100).fill(1) };
    const t0 = performance.now();
    const runs = encodeCrop(crop, H, W);
    const back = decodeCrop(runsToString(runs), H, W);
    const ms = performance.now() - t0;
    expect(runs.length).toBe(1 + 2 * 200); // one set run per column of the crop
    expect(runs[0]).toBe(1000 * H + 500);
    expect([back.x, back.y, back.w, back.h, back.area]).toEqual([1000, 500, 200, 100, 20000]);
    expect(ms).toBeLessThan(500); // walks the crop, not the 12 million pixels
  });
});
