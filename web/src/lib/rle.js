// Mask RLE as the server stores it (docs/platform.md, "The annotation document"): COCO's
// run-length encoding over the pixels in column-major order (x-major: all rows of column 0,
// then column 1, ...), runs alternating background / foreground and starting with
// background (a mask whose first pixel is set starts with a run of 0). `counts` is either a
// list of run lengths or COCO's compressed string (pycocotools' rleToString / rleFrString).
//
// In the editor a mask is a row-major bitmap (index y * width + x, 1 = set), usually cropped
// to its bounding box: {x, y, w, h, bits} in image pixels. These functions convert between
// the two without ever walking the whole image when a crop will do.

// ---- the compressed string ---------------------------------------------------------------

// Each value in 5-bit groups, low group first, as characters from '0' (48); bit 0x20 says
// another group follows, bit 0x10 of the last group is the sign; from the fourth value on
// (index > 2) a value is stored as the difference to the value two places back.
export function runsToString(runs) {
  let s = '';
  for (let i = 0; i < runs.length; i++) {
    let x = runs[i];
    if (i > 2) x -= runs[i - 2];
    let more = true;
    while (more) {
      let c = x & 0x1f;
      x >>= 5; // arithmetic: keeps the sign
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

// The inverse; throws an Error naming the place on a character that is not part of the
// alphabet, a string that ends inside a value, or a run that decodes negative.
export function stringToRuns(s) {
  const runs = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    const start = p;
    while (more) {
      if (p >= s.length) throw new Error(`the string ends inside a value (at character ${start})`);
      const c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63) throw new Error(`character ${p} ('${s[p]}') is not part of a COCO RLE string`);
      if (k >= 7) throw new Error(`the value at character ${start} is too long`);
      x += (c & 0x1f) * 2 ** (5 * k); // multiplication: groups beyond bit 31 stay exact
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x -= 2 ** (5 * k);
    }
    if (runs.length > 2) x += runs[runs.length - 2];
    if (x < 0) throw new Error(`run ${runs.length} decodes to ${x}, not a run length`);
    runs.push(x);
  }
  return runs;
}

// counts (a list or a string) -> run lengths (a new array).
export function decodeCounts(counts) {
  if (typeof counts === 'string') return stringToRuns(counts);
  if (!Array.isArray(counts)) throw new Error('counts must be a list of run lengths or a compressed COCO RLE string');
  return counts.map((x, i) => {
    if (!Number.isInteger(x) || x < 0) throw new Error(`counts[${i}]: ${x} is not a run length`);
    return x;
  });
}

// null when the runs cover exactly height x width pixels with at least one set, otherwise
// what is wrong (the server's own checks, so a bad mask is caught before saving).
export function checkRuns(runs, height, width) {
  let total = 0;
  let fg = 0;
  for (let i = 0; i < runs.length; i++) {
    total += runs[i];
    if (i & 1) fg += runs[i];
  }
  if (total !== height * width) return `the runs cover ${total} pixels, the image has ${height} x ${width} = ${height * width}`;
  if (fg === 0) return 'the mask is empty';
  return null;
}

export function runsArea(runs) {
  let a = 0;
  for (let i = 1; i < runs.length; i += 2) a += runs[i];
  return a;
}

// ---- bitmaps -----------------------------------------------------------------------------

// A row-major bitmap of the whole image (Uint8Array, height * width) -> runs. Only the
// bounding box {x, y, w, h} is walked when given (everything outside it must be clear).
export function encodeMask(bits, height, width, box = null) {
  return encodeCrop({ x: 0, y: 0, w: width, h: height, bits }, height, width, box);
}

// A cropped bitmap {x, y, w, h, bits} placed in a height x width image -> runs. Pixels of
// the crop outside the image are ignored. `box` (within the crop, image coordinates) limits
// the walk further when the caller knows where the set pixels are.
export function encodeCrop(crop, height, width, box = null) {
  let x0 = Math.max(0, crop.x);
  let y0 = Math.max(0, crop.y);
  let x1 = Math.min(width, crop.x + crop.w);
  let y1 = Math.min(height, crop.y + crop.h);
  if (box) {
    x0 = Math.max(x0, box.x);
    y0 = Math.max(y0, box.y);
    x1 = Math.min(x1, box.x + box.w);
    y1 = Math.min(y1, box.y + box.h);
  }
  if (x1 <= x0 || y1 <= y0) return [height * width];
  const runs = [];
  let cur = 0; // the value of the run being counted (runs start with background)
  let run = x0 * height; // the whole columns left of the crop
  const cw = crop.w;
  const bits = crop.bits;
  const above = y0;
  const below = height - y1;
  for (let x = x0; x < x1; x++) {
    if (above) {
      if (cur) {
        runs.push(run);
        run = 0;
        cur = 0;
      }
      run += above;
    }
    let idx = (y0 - crop.y) * cw + (x - crop.x);
    for (let y = y0; y < y1; y++, idx += cw) {
      const v = bits[idx] ? 1 : 0;
      if (v !== cur) {
        runs.push(run);
        run = 0;
        cur = v;
      }
      run++;
    }
    if (below) {
      if (cur) {
        runs.push(run);
        run = 0;
        cur = 0;
      }
      run += below;
    }
  }
  if (cur) {
    runs.push(run);
    run = 0;
  }
  run += (width - x1) * height; // the whole columns right of the crop
  if (run > 0 || runs.length === 0) runs.push(run); // a mask may end with a set run
  return runs;
}

// runs -> a row-major bitmap of the whole image; throws when the runs do not cover it.
export function decodeMask(counts, height, width) {
  const runs = Array.isArray(counts) || typeof counts === 'string' ? decodeCounts(counts) : counts;
  const err = checkCover(runs, height, width);
  if (err) throw new Error(err);
  const bits = new Uint8Array(height * width);
  let p = 0;
  for (let i = 0; i < runs.length; i++) {
    const n = runs[i];
    if (i & 1) {
      for (let k = p; k < p + n; k++) bits[(k % height) * width + ((k / height) | 0)] = 1;
    }
    p += n;
  }
  return bits;
}

function checkCover(runs, height, width) {
  let total = 0;
  for (const r of runs) total += r;
  return total === height * width ? null : `the runs cover ${total} pixels, not ${height} x ${width}`;
}

// runs -> the mask cropped to its bounding box {x, y, w, h, bits, area}, or null when empty.
// Two passes over the runs only (never over the whole image).
export function decodeCrop(counts, height, width) {
  const runs = Array.isArray(counts) || typeof counts === 'string' ? decodeCounts(counts) : counts;
  const err = checkCover(runs, height, width);
  if (err) throw new Error(err);
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -1;
  let maxY = -1;
  let p = 0;
  let area = 0;
  for (let i = 0; i < runs.length; i++) {
    const n = runs[i];
    if (i & 1 && n > 0) {
      area += n;
      const xa = (p / height) | 0;
      const xb = ((p + n - 1) / height) | 0;
      if (xa < minX) minX = xa;
      if (xb > maxX) maxX = xb;
      if (xb > xa) {
        // the run wraps from the bottom of one column to the top of the next: every row
        minY = 0;
        maxY = height - 1;
      } else {
        minY = Math.min(minY, p % height);
        maxY = Math.max(maxY, (p + n - 1) % height);
      }
    }
    p += n;
  }
  if (maxX < 0) return null;
  const w = maxX - minX + 1;
  const h = maxY - minY + 1;
  const bits = new Uint8Array(w * h);
  p = 0;
  for (let i = 0; i < runs.length; i++) {
    const n = runs[i];
    if (i & 1) {
      let k = p;
      const end = p + n;
      while (k < end) {
        const x = (k / height) | 0;
        const y = k - x * height;
        const stop = Math.min(end, (x + 1) * height); // the rest of this column
        let idx = (y - minY) * w + (x - minX);
        for (let q = k; q < stop; q++, idx += w) bits[idx] = 1;
        k = stop;
      }
    }
    p += n;
  }
  return { x: minX, y: minY, w, h, bits, area };
}

// The bounding box {x, y, w, h} of the set pixels of a crop (image coordinates), or null.
export function cropBounds(crop) {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -1;
  let maxY = -1;
  const { w, h, bits } = crop;
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      if (bits[row + x]) {
        if (x < minX) minX = x;
        if (x > maxX) maxX = x;
        if (y < minY) minY = y;
        maxY = y;
      }
    }
  }
  if (maxX < 0) return null;
  return { x: crop.x + minX, y: crop.y + minY, w: maxX - minX + 1, h: maxY - minY + 1 };
}
