// Canvas geometry for the annotation workspace, pure functions (unit-tested in
// geometry.test.js): the view transform between image pixels and screen (CSS) pixels, zoom
// about a point, fit-to-screen, hit testing of boxes, polygons, vertices and handles, box
// move and resize, polygon edits, point-in-polygon, clamping to the image, and the brush
// that paints masks.
//
// Coordinates follow the annotation document: image pixels in the continuous frame
// [0, width] x [0, height], x to the right, y down; a box is {x, y, w, h} with w, h > 0.
// A view is {scale, tx, ty}: screen = image * scale + t.

export const MIN_SCALE = 0.01;
export const MAX_SCALE = 64;

export function clamp(v, lo, hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

// ---- the view ----------------------------------------------------------------------------

export function toScreen(view, x, y) {
  return [x * view.scale + view.tx, y * view.scale + view.ty];
}

export function toImage(view, sx, sy) {
  return [(sx - view.tx) / view.scale, (sy - view.ty) / view.scale];
}

// The view that shows the whole image centred in a vw x vh viewport with `margin` pixels
// around it (never below MIN_SCALE).
export function fitView(imgW, imgH, vw, vh, margin = 16) {
  const aw = Math.max(1, vw - 2 * margin);
  const ah = Math.max(1, vh - 2 * margin);
  const scale = clamp(Math.min(aw / imgW, ah / imgH), MIN_SCALE, MAX_SCALE);
  return { scale, tx: (vw - imgW * scale) / 2, ty: (vh - imgH * scale) / 2 };
}

// Zooms by `factor` keeping the image point under the screen point (sx, sy) where it is.
export function zoomAt(view, factor, sx, sy, min = MIN_SCALE, max = MAX_SCALE) {
  const scale = clamp(view.scale * factor, min, max);
  const k = scale / view.scale;
  return { scale, tx: sx - (sx - view.tx) * k, ty: sy - (sy - view.ty) * k };
}

// A given scale about (sx, sy) (1 = one image pixel per CSS pixel).
export function zoomTo(view, scale, sx, sy) {
  return zoomAt(view, scale / view.scale, sx, sy);
}

export function panBy(view, dx, dy) {
  return { scale: view.scale, tx: view.tx + dx, ty: view.ty + dy };
}

// The part of the image the viewport shows, as an image-space rectangle.
export function visibleRect(view, vw, vh) {
  const [x0, y0] = toImage(view, 0, 0);
  const [x1, y1] = toImage(view, vw, vh);
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

// Whether a picture drawn with view `drawn`, moved and scaled by CSS to stand for `view`
// (both on a vw x vh screen), still shows every pixel of the iw x ih image that `view` shows,
// at no more than `maxRatio` times (or less than 1/maxRatio of) the scale it was drawn at:
// what a pan or zoom gesture needs before it must draw again. Half a screen pixel of slack
// absorbs rounding.
export function viewCovers(drawn, view, vw, vh, iw, ih, maxRatio = 2) {
  const k = view.scale / drawn.scale;
  if (!(k <= maxRatio && k >= 1 / maxRatio)) return false;
  const clip = (r) => {
    const x0 = Math.max(0, r.x);
    const y0 = Math.max(0, r.y);
    const x1 = Math.min(iw, r.x + r.w);
    const y1 = Math.min(ih, r.y + r.h);
    return { x0, y0, x1, y1, empty: !(x1 > x0 && y1 > y0) };
  };
  const want = clip(visibleRect(view, vw, vh));
  if (want.empty) return true;
  const have = clip(visibleRect(drawn, vw, vh));
  if (have.empty) return false;
  const e = 0.5 / drawn.scale;
  return want.x0 >= have.x0 - e && want.y0 >= have.y0 - e && want.x1 <= have.x1 + e && want.y1 <= have.y1 + e;
}

// The wheel's delta as a zoom factor: one notch (100 px) is about 1.2x; trackpads' small
// deltas zoom smoothly.
export function wheelFactor(deltaY, deltaMode = 0) {
  const px = deltaMode === 1 ? deltaY * 33 : deltaMode === 2 ? deltaY * 400 : deltaY;
  return Math.exp(-clamp(px, -300, 300) * 0.0018);
}

// ---- rectangles and points -------------------------------------------------------------

export function rectsIntersect(a, b) {
  return a.x <= b.x + b.w && b.x <= a.x + a.w && a.y <= b.y + b.h && b.y <= a.y + a.h;
}

export function clampPoint(x, y, W, H) {
  return [clamp(x, 0, W), clamp(y, 0, H)];
}

// The box spanned by two corners, normalized and clamped to the image.
export function boxFromCorners(x0, y0, x1, y1, W, H) {
  const ax = clamp(Math.min(x0, x1), 0, W);
  const bx = clamp(Math.max(x0, x1), 0, W);
  const ay = clamp(Math.min(y0, y1), 0, H);
  const by = clamp(Math.max(y0, y1), 0, H);
  return { x: ax, y: ay, w: bx - ax, h: by - ay };
}

// A box clamped into the image: moved inside when it fits, cut to the image otherwise.
export function clampBox(b, W, H) {
  const w = Math.min(b.w, W);
  const h = Math.min(b.h, H);
  return { x: clamp(b.x, 0, W - w), y: clamp(b.y, 0, H - h), w, h };
}

export function boundsOfPoints(points) {
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  for (const [x, y] of points) {
    if (x < minX) minX = x;
    if (y < minY) minY = y;
    if (x > maxX) maxX = x;
    if (y > maxY) maxY = y;
  }
  return { x: minX, y: minY, w: maxX - minX, h: maxY - minY };
}

// The bounding box of a shape of the document (masks need their decoded bounds in
// shape.bbox or passed as maskBounds).
export function shapeBounds(s, maskBounds = null) {
  if (s.type === 'box') return { x: s.x, y: s.y, w: s.w, h: s.h };
  if (s.type === 'polygon' || s.type === 'text') return boundsOfPoints(s.points);
  if (s.type === 'mask') return maskBounds || s.bbox || null;
  return null;
}

// ---- polygons ----------------------------------------------------------------------------

// Shoelace: the signed area (positive when the points run clockwise on screen, y down).
export function signedArea(points) {
  let a = 0;
  for (let i = 0, n = points.length; i < n; i++) {
    const [x0, y0] = points[i];
    const [x1, y1] = points[(i + 1) % n];
    a += x0 * y1 - x1 * y0;
  }
  return a / 2;
}

export function polygonArea(points) {
  return Math.abs(signedArea(points));
}

// Even-odd rule; points on the boundary may go either way (hit testing adds a tolerance).
export function pointInPolygon(points, x, y) {
  let inside = false;
  for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
    const [xi, yi] = points[i];
    const [xj, yj] = points[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// Distance from (px, py) to the segment a-b, and the nearest point's parameter t in [0, 1].
export function segmentDistance(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 ? clamp(((px - ax) * dx + (py - ay) * dy) / len2, 0, 1) : 0;
  const qx = ax + t * dx;
  const qy = ay + t * dy;
  return { d: Math.hypot(px - qx, py - qy), t, x: qx, y: qy };
}

// The edge of a closed polygon nearest to (x, y): {index (the edge from points[index] to
// points[index + 1]), d, x, y}.
export function nearestEdge(points, x, y, closed = true) {
  let best = null;
  const n = points.length;
  const m = closed ? n : n - 1;
  for (let i = 0; i < m; i++) {
    const [ax, ay] = points[i];
    const [bx, by] = points[(i + 1) % n];
    const r = segmentDistance(x, y, ax, ay, bx, by);
    if (!best || r.d < best.d) best = { index: i, d: r.d, x: r.x, y: r.y };
  }
  return best;
}

// The index of the point within `tol` of (x, y) (the nearest when several are), or -1.
export function hitPoint(points, x, y, tol) {
  let best = -1;
  let bd = tol;
  for (let i = 0; i < points.length; i++) {
    const d = Math.hypot(points[i][0] - x, points[i][1] - y);
    if (d <= bd) {
      bd = d;
      best = i;
    }
  }
  return best;
}

// New point lists (the inputs are never changed: the undo history keeps them).
export function insertVertex(points, afterIndex, p) {
  const out = points.slice();
  out.splice(afterIndex + 1, 0, [p[0], p[1]]);
  return out;
}

export function removeVertex(points, index, min = 3) {
  if (points.length <= min) return points;
  const out = points.slice();
  out.splice(index, 1);
  return out;
}

export function moveVertex(points, index, x, y, W, H) {
  const out = points.slice();
  out[index] = clampPoint(x, y, W, H);
  return out;
}

// Translates points by (dx, dy), limited so that every point stays inside the image.
export function movePoints(points, dx, dy, W, H) {
  const b = boundsOfPoints(points);
  const [cx, cy] = limitMove(b, dx, dy, W, H);
  return points.map(([x, y]) => [x + cx, y + cy]);
}

// (dx, dy) limited so that the rectangle b stays inside the image.
export function limitMove(b, dx, dy, W, H) {
  return [clamp(dx, -b.x, W - (b.x + b.w)), clamp(dy, -b.y, H - (b.y + b.h))];
}

// A text line's quadrilateral from a box: clockwise from the top-left corner.
export function quadFromBox(b) {
  return [
    [b.x, b.y],
    [b.x + b.w, b.y],
    [b.x + b.w, b.y + b.h],
    [b.x, b.y + b.h],
  ];
}

// Four points reordered clockwise (on screen) starting from the top-left one (the smallest
// x + y), as the document's convention for text lines wants.
export function orderQuad(points) {
  const p = points.slice();
  if (signedArea(p) < 0) p.reverse();
  let start = 0;
  for (let i = 1; i < p.length; i++) if (p[i][0] + p[i][1] < p[start][0] + p[start][1]) start = i;
  return p.slice(start).concat(p.slice(0, start));
}

// ---- boxes -------------------------------------------------------------------------------

// The eight resize handles of a box: corners and edge middles, named by compass point.
export const HANDLES = ['nw', 'n', 'ne', 'e', 'se', 's', 'sw', 'w'];

export function boxHandles(b) {
  const x0 = b.x;
  const y0 = b.y;
  const x1 = b.x + b.w;
  const y1 = b.y + b.h;
  const xm = (x0 + x1) / 2;
  const ym = (y0 + y1) / 2;
  return [
    [x0, y0],
    [xm, y0],
    [x1, y0],
    [x1, ym],
    [x1, y1],
    [xm, y1],
    [x0, y1],
    [x0, ym],
  ];
}

// The handle of box b under (x, y) within tol (image units), or null.
export function hitBoxHandle(b, x, y, tol) {
  const i = hitPoint(boxHandles(b), x, y, tol);
  return i < 0 ? null : HANDLES[i];
}

// The box after dragging `handle` to (x, y): the opposite side stays, a handle dragged past
// it flips the box, the result is clamped to the image; {box, handle} with the handle now
// under the pointer (it changes name when the box flips).
export function resizeBox(b, handle, x, y, W, H) {
  let x0 = b.x;
  let y0 = b.y;
  let x1 = b.x + b.w;
  let y1 = b.y + b.h;
  [x, y] = clampPoint(x, y, W, H);
  if (handle.includes('w')) x0 = x;
  if (handle.includes('e')) x1 = x;
  if (handle.includes('n')) y0 = y;
  if (handle.includes('s')) y1 = y;
  let h = handle;
  if (x1 < x0) {
    [x0, x1] = [x1, x0];
    h = h.replace(/[we]/, (c) => (c === 'w' ? 'e' : 'w'));
  }
  if (y1 < y0) {
    [y0, y1] = [y1, y0];
    h = h.replace(/[ns]/, (c) => (c === 'n' ? 's' : 'n'));
  }
  return { box: { x: x0, y: y0, w: x1 - x0, h: y1 - y0 }, handle: h };
}

// A box moved by (dx, dy), kept inside the image.
export function moveBox(b, dx, dy, W, H) {
  const [cx, cy] = limitMove(b, dx, dy, W, H);
  return { x: b.x + cx, y: b.y + cy, w: b.w, h: b.h };
}

// The CSS cursor for a handle.
export function handleCursor(h) {
  return { nw: 'nwse-resize', se: 'nwse-resize', ne: 'nesw-resize', sw: 'nesw-resize', n: 'ns-resize', s: 'ns-resize', e: 'ew-resize', w: 'ew-resize' }[h] || 'default';
}

// ---- hit testing shapes ------------------------------------------------------------------

// Whether (x, y) (image units) hits shape s: inside a box or polygon, or within tol of its
// outline (so thin shapes can be picked); masks by their pixels (crop: {x, y, w, h, bits}).
export function hitShape(s, x, y, tol, crop = null) {
  if (s.type === 'box') {
    return x >= s.x - tol && x <= s.x + s.w + tol && y >= s.y - tol && y <= s.y + s.h + tol;
  }
  if (s.type === 'polygon' || s.type === 'text') {
    const b = boundsOfPoints(s.points);
    if (x < b.x - tol || x > b.x + b.w + tol || y < b.y - tol || y > b.y + b.h + tol) return false;
    if (pointInPolygon(s.points, x, y)) return true;
    return nearestEdge(s.points, x, y).d <= tol;
  }
  if (s.type === 'mask' && crop) {
    const px = Math.floor(x) - crop.x;
    const py = Math.floor(y) - crop.y;
    const r = Math.max(0, Math.ceil(tol));
    for (let yy = Math.max(0, py - r); yy <= Math.min(crop.h - 1, py + r); yy++)
      for (let xx = Math.max(0, px - r); xx <= Math.min(crop.w - 1, px + r); xx++) if (crop.bits[yy * crop.w + xx]) return true;
    return false;
  }
  return false;
}

// The topmost shape (the last in drawing order) under (x, y) that passes `skip` not, as an
// index, or -1. Among nested shapes the smallest containing one wins, so a small box inside
// a large one can always be picked.
export function hitTest(shapes, x, y, tol, { skip = null, crops = null, bounds = null } = {}) {
  let best = -1;
  let bestArea = Infinity;
  for (let i = shapes.length - 1; i >= 0; i--) {
    const s = shapes[i];
    if (skip && skip(s, i)) continue;
    const b = bounds ? bounds[i] : shapeBounds(s);
    if (!b || x < b.x - tol || x > b.x + b.w + tol || y < b.y - tol || y > b.y + b.h + tol) continue;
    if (!hitShape(s, x, y, tol, crops ? crops(s) : null)) continue;
    const area = b.w * b.h;
    if (area < bestArea) {
      best = i;
      bestArea = area;
    }
  }
  return best;
}

// Indexes of the shapes whose bounds intersect rect r (spatial culling for drawing).
export function cull(bounds, r) {
  const out = [];
  for (let i = 0; i < bounds.length; i++) {
    const b = bounds[i];
    if (b && rectsIntersect(b, r)) out.push(i);
  }
  return out;
}

// ---- the brush ---------------------------------------------------------------------------

// Paints (value 1) or erases (0) a disc of radius r (image pixels) centred at (cx, cy) into
// a row-major bitmap of W x H; returns the touched rectangle {x, y, w, h} or null. A pixel
// belongs to the disc when its centre does.
export function stampDisc(bits, W, H, cx, cy, r, value) {
  // the pixels whose centres (x + 0.5) can lie within r of the centre
  const x0 = Math.max(0, Math.ceil(cx - r - 0.5));
  const x1 = Math.min(W - 1, Math.floor(cx + r - 0.5));
  const y0 = Math.max(0, Math.ceil(cy - r - 0.5));
  const y1 = Math.min(H - 1, Math.floor(cy + r - 0.5));
  if (x1 < x0 || y1 < y0) return null;
  const r2 = r * r;
  const v = value ? 1 : 0;
  for (let y = y0; y <= y1; y++) {
    const dy = y + 0.5 - cy;
    const row = y * W;
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - cx;
      if (dx * dx + dy * dy <= r2) bits[row + x] = v;
    }
  }
  return { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

// A brush stroke from (ax, ay) to (bx, by): discs every half radius; returns the touched
// rectangle or null.
export function strokeSegment(bits, W, H, ax, ay, bx, by, r, value) {
  const len = Math.hypot(bx - ax, by - ay);
  const steps = Math.max(1, Math.ceil(len / Math.max(0.5, r / 2)));
  let box = null;
  for (let i = 0; i <= steps; i++) {
    const t = i / steps;
    box = unionRect(box, stampDisc(bits, W, H, ax + (bx - ax) * t, ay + (by - ay) * t, r, value));
  }
  return box;
}

export function unionRect(a, b) {
  if (!a) return b;
  if (!b) return a;
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, w: Math.max(a.x + a.w, b.x + b.w) - x, h: Math.max(a.y + a.h, b.y + b.h) - y };
}

// ---- masks --------------------------------------------------------------------------------

// A mask's pixels {x, y, w, h, bits} scaled into rect (image units; rounded to whole pixels,
// at least one, cut to a W x H image) by nearest neighbour: each new pixel takes the old
// pixel under its centre. null when nothing is set in the result.
export function resampleCrop(crop, rect, W, H) {
  let x0 = Math.round(rect.x);
  let y0 = Math.round(rect.y);
  let x1 = Math.max(x0 + 1, Math.round(rect.x + rect.w));
  let y1 = Math.max(y0 + 1, Math.round(rect.y + rect.h));
  const fx = crop.w / (x1 - x0);
  const fy = crop.h / (y1 - y0);
  // the part inside the image
  const cx0 = Math.max(0, x0);
  const cy0 = Math.max(0, y0);
  const cx1 = Math.min(W, x1);
  const cy1 = Math.min(H, y1);
  if (cx1 <= cx0 || cy1 <= cy0) return null;
  const w = cx1 - cx0;
  const h = cy1 - cy0;
  const bits = new Uint8Array(w * h);
  const col = new Int32Array(w);
  for (let i = 0; i < w; i++) col[i] = Math.min(crop.w - 1, Math.floor((cx0 + i - x0 + 0.5) * fx));
  let any = false;
  for (let j = 0; j < h; j++) {
    const row = Math.min(crop.h - 1, Math.floor((cy0 + j - y0 + 0.5) * fy)) * crop.w;
    for (let i = 0; i < w; i++) {
      const v = crop.bits[row + col[i]];
      if (v) {
        bits[j * w + i] = 1;
        any = true;
      }
    }
  }
  return any ? { x: cx0, y: cy0, w, h, bits } : null;
}

// ---- pasting -----------------------------------------------------------------------------

// A shape fitted into a W x H image (copied from another image or pasted): boxes and points
// clamped, degenerate results dropped (null). Masks only fit an image of their own size.
export function fitShape(s, W, H) {
  if (s.type === 'box') {
    const b = boxFromCorners(s.x, s.y, s.x + s.w, s.y + s.h, W, H);
    return b.w > 0 && b.h > 0 ? { ...s, ...b } : null;
  }
  if (s.type === 'polygon' || s.type === 'text') {
    const points = s.points.map(([x, y]) => clampPoint(x, y, W, H));
    return polygonArea(points) > 0 || s.type === 'text' ? { ...s, points } : null;
  }
  if (s.type === 'mask') return s.rle && s.rle.size[0] === H && s.rle.size[1] === W ? { ...s } : null;
  return null;
}
