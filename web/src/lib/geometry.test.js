// The workspace's canvas geometry: the view transform, zoom about a point, fit-to-screen,
// hit testing, box resize and move, polygon edits, clamping and the mask brush. Expected
// values are worked by hand.
import { describe, it, expect } from 'vitest';
import {
  toScreen, toImage, fitView, zoomAt, zoomTo, panBy, visibleRect, viewCovers, wheelFactor, MIN_SCALE, MAX_SCALE,
  rectsIntersect, clampPoint, boxFromCorners, clampBox, boundsOfPoints, shapeBounds,
  signedArea, polygonArea, pointInPolygon, segmentDistance, nearestEdge, hitPoint,
  insertVertex, removeVertex, moveVertex, movePoints, limitMove, quadFromBox, orderQuad,
  boxHandles, hitBoxHandle, resizeBox, moveBox, handleCursor,
  hitShape, hitTest, cull, stampDisc, strokeSegment, unionRect, fitShape, resampleCrop,
} from './geometry.js';

const close = (a, b, eps = 1e-9) => expect(Math.abs(a - b)).toBeLessThan(eps);

describe('the view', () => {
  it('maps image to screen and back', () => {
    const v = { scale: 2, tx: 10, ty: -5 };
    expect(toScreen(v, 3, 4)).toEqual([16, 3]);
    expect(toImage(v, 16, 3)).toEqual([3, 4]);
    for (const [x, y] of [[0, 0], [123.5, 77.25], [-3, 4000]]) {
      const [sx, sy] = toScreen(v, x, y);
      const [bx, by] = toImage(v, sx, sy);
      close(bx, x);
      close(by, y);
    }
  });

  it('fits a 4000 x 3000 image into 1000 x 800 with a margin, centred', () => {
    const v = fitView(4000, 3000, 1000, 800, 20);
    // width limits: (1000 - 40) / 4000 = 0.24; height would allow (800 - 40) / 3000 = 0.2533
    close(v.scale, 0.24);
    close(v.tx, (1000 - 960) / 2);
    close(v.ty, (800 - 720) / 2);
    // a small image is enlarged to fill the space
    const s = fitView(10, 10, 220, 120, 10);
    close(s.scale, 10);
    close(s.tx, 60);
    close(s.ty, 10);
  });

  it('zooms about a point that stays put', () => {
    const v = { scale: 0.5, tx: 100, ty: 50 };
    const [ix, iy] = toImage(v, 300, 200);
    const z = zoomAt(v, 2, 300, 200);
    close(z.scale, 1);
    const [sx, sy] = toScreen(z, ix, iy);
    close(sx, 300);
    close(sy, 200);
    // by hand: t' = s - (s - t) * k = 300 - 200 * 2 = -100; 200 - 150 * 2 = -100
    close(z.tx, -100);
    close(z.ty, -100);
    const to1 = zoomTo(v, 4, 0, 0);
    close(to1.scale, 4);
    close(to1.tx, 800);
  });

  it('keeps the scale within its limits', () => {
    const v = { scale: 1, tx: 0, ty: 0 };
    expect(zoomAt(v, 1e9, 5, 5).scale).toBe(MAX_SCALE);
    expect(zoomAt(v, 1e-9, 5, 5).scale).toBe(MIN_SCALE);
    // the point still stays put at the limit
    const z = zoomAt({ scale: 60, tx: 3, ty: 4 }, 2, 100, 100);
    const [ix] = toImage({ scale: 60, tx: 3, ty: 4 }, 100, 100);
    close(toScreen(z, ix, 0)[0], 100);
  });

  it('pans and reports the visible part of the image', () => {
    const v = panBy({ scale: 2, tx: 0, ty: 0 }, -100, -50);
    expect(v).toEqual({ scale: 2, tx: -100, ty: -50 });
    expect(visibleRect(v, 400, 300)).toEqual({ x: 50, y: 25, w: 200, h: 150 });
  });

  it('says when a moved picture still covers what the view shows', () => {
    // a 4000 x 3000 image fitted into 1000 x 800: the whole image was drawn
    const fit = fitView(4000, 3000, 1000, 800);
    expect(viewCovers(fit, fit, 1000, 800, 4000, 3000)).toBe(true);
    // panned anywhere, even off the screen: nothing new of the image comes into sight
    expect(viewCovers(fit, panBy(fit, 300, -200), 1000, 800, 4000, 3000)).toBe(true);
    expect(viewCovers(fit, panBy(fit, 5000, 0), 1000, 800, 4000, 3000)).toBe(true);
    // zoomed in 1.9x: covered; 2.1x: too coarse to stand for the view
    expect(viewCovers(fit, zoomAt(fit, 1.9, 500, 400), 1000, 800, 4000, 3000)).toBe(true);
    expect(viewCovers(fit, zoomAt(fit, 2.1, 500, 400), 1000, 800, 4000, 3000)).toBe(false);
    expect(viewCovers(fit, zoomAt(fit, 0.4, 500, 400), 1000, 800, 4000, 3000)).toBe(false);
    // zoomed in, a picture of the middle: a small pan within it... reveals new image at the edge
    const z = { scale: 1, tx: -1500, ty: -1100 }; // shows x 1500..2500, y 1100..1900
    expect(viewCovers(z, z, 1000, 800, 4000, 3000)).toBe(true);
    expect(viewCovers(z, panBy(z, 10, 0), 1000, 800, 4000, 3000)).toBe(false);
    expect(viewCovers(z, panBy(z, 0, -0.2), 1000, 800, 4000, 3000)).toBe(true); // under half a pixel
    expect(viewCovers(z, zoomAt(z, 1.5, 500, 400), 1000, 800, 4000, 3000)).toBe(true);
    expect(viewCovers(z, zoomAt(z, 0.9, 500, 400), 1000, 800, 4000, 3000)).toBe(false);
    // at the image's right edge, panning further right shows only what lies past the image
    const e = { scale: 1, tx: -3000, ty: -1100 }; // x 3000..4000
    expect(viewCovers(e, panBy(e, -200, 0), 1000, 800, 4000, 3000)).toBe(true);
    expect(viewCovers(e, panBy(e, 200, 0), 1000, 800, 4000, 3000)).toBe(false);
    // a view that shows none of the image needs nothing
    expect(viewCovers(z, { scale: 1, tx: 5000, ty: 0 }, 1000, 800, 4000, 3000)).toBe(true);
  });

  it('turns wheel deltas into zoom factors', () => {
    expect(wheelFactor(-100)).toBeGreaterThan(1.15);
    expect(wheelFactor(-100)).toBeLessThan(1.25);
    close(wheelFactor(100) * wheelFactor(-100), 1);
    expect(wheelFactor(0)).toBe(1);
    // lines and pages are bigger steps, but capped
    expect(wheelFactor(-3, 1)).toBeGreaterThan(wheelFactor(-3, 0));
    close(wheelFactor(-10, 2), wheelFactor(-10000, 0));
  });
});

describe('rectangles and points', () => {
  it('intersects rectangles, touching edges included', () => {
    expect(rectsIntersect({ x: 0, y: 0, w: 10, h: 10 }, { x: 10, y: 10, w: 5, h: 5 })).toBe(true);
    expect(rectsIntersect({ x: 0, y: 0, w: 10, h: 10 }, { x: 10.5, y: 0, w: 5, h: 5 })).toBe(false);
    expect(rectsIntersect({ x: 0, y: 0, w: 10, h: 10 }, { x: 2, y: 2, w: 1, h: 1 })).toBe(true);
  });

  it('clamps points and boxes to the image', () => {
    expect(clampPoint(-3, 120, 100, 80)).toEqual([0, 80]);
    expect(boxFromCorners(50, 40, -10, 100, 100, 80)).toEqual({ x: 0, y: 40, w: 50, h: 40 });
    expect(clampBox({ x: 90, y: -5, w: 20, h: 10 }, 100, 80)).toEqual({ x: 80, y: 0, w: 20, h: 10 });
    expect(clampBox({ x: 5, y: 5, w: 200, h: 10 }, 100, 80)).toEqual({ x: 0, y: 5, w: 100, h: 10 });
  });

  it('bounds shapes', () => {
    expect(boundsOfPoints([[3, 9], [1, 2], [7, 4]])).toEqual({ x: 1, y: 2, w: 6, h: 7 });
    expect(shapeBounds({ type: 'box', x: 1, y: 2, w: 3, h: 4 })).toEqual({ x: 1, y: 2, w: 3, h: 4 });
    expect(shapeBounds({ type: 'text', points: [[0, 0], [4, 0], [4, 2], [0, 2]] })).toEqual({ x: 0, y: 0, w: 4, h: 2 });
    expect(shapeBounds({ type: 'mask' }, { x: 1, y: 1, w: 2, h: 2 })).toEqual({ x: 1, y: 1, w: 2, h: 2 });
    expect(shapeBounds({ type: 'mask' })).toBe(null);
  });
});

describe('polygons', () => {
  const square = [[0, 0], [10, 0], [10, 10], [0, 10]]; // clockwise on screen (y down)
  const ell = [[0, 0], [4, 0], [4, 1], [1, 1], [1, 4], [0, 4]]; // an L: area 4 + 3 = 7

  it('computes areas with the sign of the winding', () => {
    expect(signedArea(square)).toBe(100);
    expect(signedArea(square.slice().reverse())).toBe(-100);
    expect(polygonArea(ell)).toBe(7);
    expect(polygonArea([[0, 0], [1, 1], [2, 2]])).toBe(0);
  });

  it('tests points inside, including concave corners', () => {
    expect(pointInPolygon(square, 5, 5)).toBe(true);
    expect(pointInPolygon(square, 11, 5)).toBe(false);
    expect(pointInPolygon(ell, 0.5, 3)).toBe(true);
    expect(pointInPolygon(ell, 3, 3)).toBe(false); // the notch of the L
    expect(pointInPolygon(ell, 3, 0.5)).toBe(true);
  });

  it('measures distances to segments and finds the nearest edge', () => {
    const r = segmentDistance(5, 3, 0, 0, 10, 0);
    expect([r.d, r.t, r.x, r.y]).toEqual([3, 0.5, 5, 0]);
    expect(segmentDistance(-4, 3, 0, 0, 10, 0).d).toBe(5); // past the end: to the end point
    expect(segmentDistance(1, 1, 2, 2, 2, 2).d).toBe(Math.SQRT2); // a point segment
    const e = nearestEdge(square, 10.5, 4);
    expect([e.index, e.d, e.x, e.y]).toEqual([1, 0.5, 10, 4]);
    expect(nearestEdge(square, -1, 5).index).toBe(3); // the closing edge
    expect(nearestEdge(square, -1, 5, false).index).toBe(0); // open: no closing edge
  });

  it('hits the nearest point within the tolerance', () => {
    expect(hitPoint(square, 9.5, 0.4, 1)).toBe(1);
    expect(hitPoint(square, 5, 5, 1)).toBe(-1);
    expect(hitPoint([[0, 0], [1, 0]], 0.6, 0, 1)).toBe(1);
  });

  it('edits vertices without changing the input', () => {
    const before = JSON.stringify(square);
    expect(insertVertex(square, 0, [5, 0])).toEqual([[0, 0], [5, 0], [10, 0], [10, 10], [0, 10]]);
    expect(insertVertex(square, 3, [0, 5])).toEqual([[0, 0], [10, 0], [10, 10], [0, 10], [0, 5]]);
    expect(removeVertex(square, 1)).toEqual([[0, 0], [10, 10], [0, 10]]);
    const tri = [[0, 0], [1, 0], [0, 1]];
    expect(removeVertex(tri, 0)).toBe(tri); // a polygon keeps at least three points
    expect(moveVertex(square, 2, 50, -3, 20, 20)).toEqual([[0, 0], [10, 0], [20, 0], [0, 10]]);
    expect(JSON.stringify(square)).toBe(before);
  });

  it('moves points as a whole, stopping at the image border', () => {
    expect(limitMove({ x: 2, y: 3, w: 10, h: 10 }, -5, 100, 50, 20)).toEqual([-2, 7]);
    expect(movePoints(square, 5, 5, 100, 100)).toEqual([[5, 5], [15, 5], [15, 15], [5, 15]]);
    // 95 would push x to 105 > 100: limited to 90
    expect(movePoints(square, 95, 0, 100, 100)[1]).toEqual([100, 0]);
  });

  it('makes text-line quadrilaterals clockwise from the top-left', () => {
    const q = quadFromBox({ x: 1, y: 2, w: 3, h: 4 });
    expect(q).toEqual([[1, 2], [4, 2], [4, 6], [1, 6]]);
    expect(signedArea(q)).toBeGreaterThan(0);
    expect(orderQuad([[1, 6], [4, 6], [4, 2], [1, 2]])).toEqual(q); // counter-clockwise from bottom-left
    expect(orderQuad([[4, 6], [1, 6], [1, 2], [4, 2]])).toEqual(q);
  });
});

describe('boxes', () => {
  const b = { x: 10, y: 20, w: 30, h: 40 };

  it('places eight handles', () => {
    const h = boxHandles(b);
    expect(h).toHaveLength(8);
    expect(h[0]).toEqual([10, 20]);
    expect(h[1]).toEqual([25, 20]);
    expect(h[4]).toEqual([40, 60]);
    expect(h[7]).toEqual([10, 40]);
    expect(hitBoxHandle(b, 40.5, 59.5, 2)).toBe('se');
    expect(hitBoxHandle(b, 25, 21, 2)).toBe('n');
    expect(hitBoxHandle(b, 25, 40, 2)).toBe(null);
    expect(handleCursor('ne')).toBe('nesw-resize');
    expect(handleCursor('w')).toBe('ew-resize');
  });

  it('resizes from a corner, keeping the opposite corner', () => {
    const r = resizeBox(b, 'se', 50, 70, 100, 100);
    expect(r.box).toEqual({ x: 10, y: 20, w: 40, h: 50 });
    expect(r.handle).toBe('se');
    const n = resizeBox(b, 'n', 999, 0, 100, 100);
    expect(n.box).toEqual({ x: 10, y: 0, w: 30, h: 60 }); // an edge handle moves one side only
  });

  it('flips when a handle crosses the opposite side, and renames the handle', () => {
    const r = resizeBox(b, 'nw', 60, 80, 100, 100);
    expect(r.box).toEqual({ x: 40, y: 60, w: 20, h: 20 });
    expect(r.handle).toBe('se');
    const e = resizeBox(b, 'e', 0, 30, 100, 100);
    expect(e.box).toEqual({ x: 0, y: 20, w: 10, h: 40 });
    expect(e.handle).toBe('w');
  });

  it('clamps resizing and moving to the image', () => {
    expect(resizeBox(b, 'se', 500, 500, 100, 80).box).toEqual({ x: 10, y: 20, w: 90, h: 60 });
    expect(moveBox(b, 100, -100, 100, 100)).toEqual({ x: 70, y: 0, w: 30, h: 40 });
    expect(moveBox(b, 3, 4, 100, 100)).toEqual({ x: 13, y: 24, w: 30, h: 40 });
  });
});

describe('hit testing', () => {
  const shapes = [
    { type: 'box', x: 0, y: 0, w: 100, h: 100 },
    { type: 'box', x: 40, y: 40, w: 10, h: 10 },
    { type: 'polygon', points: [[200, 0], [300, 0], [250, 80]] },
    { type: 'mask' },
  ];
  const crop = { x: 400, y: 10, w: 3, h: 2, bits: Uint8Array.from([1, 0, 0, 0, 0, 1]) };
  const crops = (s) => (s.type === 'mask' ? crop : null);
  const bounds = shapes.map((s) => shapeBounds(s, s.type === 'mask' ? { x: 400, y: 10, w: 3, h: 2 } : null));

  it('tests single shapes with a tolerance', () => {
    expect(hitShape(shapes[0], 101, 50, 2)).toBe(true);
    expect(hitShape(shapes[0], 103, 50, 2)).toBe(false);
    expect(hitShape(shapes[2], 250, 30, 0)).toBe(true);
    expect(hitShape(shapes[2], 200, 40, 1)).toBe(false);
    expect(hitShape(shapes[2], 225, 41, 1)).toBe(true); // on the left edge (200,0)-(250,80)
    expect(hitShape(shapes[3], 400.5, 10.5, 0, crop)).toBe(true);
    expect(hitShape(shapes[3], 401.5, 10.5, 0, crop)).toBe(false);
    expect(hitShape(shapes[3], 401.5, 10.5, 1, crop)).toBe(true);
  });

  it('picks the smallest shape under the point, then the topmost', () => {
    expect(hitTest(shapes, 45, 45, 1, { crops, bounds })).toBe(1);
    expect(hitTest(shapes, 10, 10, 1, { crops, bounds })).toBe(0);
    expect(hitTest(shapes, 250, 20, 1, { crops, bounds })).toBe(2);
    expect(hitTest(shapes, 402.5, 11.5, 0, { crops, bounds })).toBe(3);
    expect(hitTest(shapes, 150, 150, 1, { crops, bounds })).toBe(-1);
    // hidden shapes are skipped
    expect(hitTest(shapes, 45, 45, 1, { crops, bounds, skip: (s, i) => i === 1 })).toBe(0);
    const same = [{ type: 'box', x: 0, y: 0, w: 5, h: 5 }, { type: 'box', x: 0, y: 0, w: 5, h: 5 }];
    expect(hitTest(same, 1, 1, 0)).toBe(1);
  });

  it('culls shapes outside a rectangle', () => {
    expect(cull(bounds, { x: 35, y: 35, w: 20, h: 20 })).toEqual([0, 1]);
    expect(cull(bounds, { x: 390, y: 0, w: 50, h: 50 })).toEqual([3]);
    expect(cull([null, { x: 0, y: 0, w: 1, h: 1 }], { x: 0, y: 0, w: 2, h: 2 })).toEqual([1]);
  });
});

describe('the brush', () => {
  it('stamps a disc of pixel centres', () => {
    const W = 7;
    const H = 7;
    const bits = new Uint8Array(W * H);
    const r = stampDisc(bits, W, H, 3.5, 3.5, 1.5, 1);
    // pixel centres within 1.5 of (3.5, 3.5): a diagonal neighbour is sqrt(2) = 1.41 away,
    // so the full 3x3 block; the next ring (2 away) is out
    expect(bits.reduce((a, v) => a + v, 0)).toBe(9);
    expect(bits[3 * W + 3]).toBe(1);
    expect(bits[2 * W + 2]).toBe(1);
    expect(bits[1 * W + 3]).toBe(0);
    expect(r).toEqual({ x: 2, y: 2, w: 3, h: 3 });
    stampDisc(bits, W, H, 3.5, 3.5, 0.5, 0); // erase the centre
    expect(bits[3 * W + 3]).toBe(0);
    expect(bits.reduce((a, v) => a + v, 0)).toBe(8);
  });

  it('clips at the image border', () => {
    const bits = new Uint8Array(16);
    const r = stampDisc(bits, 4, 4, 0, 0, 1.2, 1);
    expect(bits[0]).toBe(1);
    expect(r.x).toBe(0);
    expect(stampDisc(bits, 4, 4, -10, -10, 1, 1)).toBe(null);
  });

  it('strokes a segment without gaps', () => {
    const W = 40;
    const H = 5;
    const bits = new Uint8Array(W * H);
    const r = strokeSegment(bits, W, H, 2.5, 2.5, 37.5, 2.5, 1, 1);
    for (let x = 2; x <= 37; x++) expect(bits[2 * W + x]).toBe(1);
    expect(r.x).toBe(1);
    expect(r.x + r.w).toBe(39);
  });

  it('unites rectangles', () => {
    expect(unionRect(null, { x: 1, y: 1, w: 1, h: 1 })).toEqual({ x: 1, y: 1, w: 1, h: 1 });
    expect(unionRect({ x: 0, y: 0, w: 2, h: 2 }, { x: 5, y: -1, w: 1, h: 1 })).toEqual({ x: 0, y: -1, w: 6, h: 3 });
  });
});

describe('resizing a mask', () => {
  // a 4 x 2 crop at (10, 20): the left half set
  const crop = { x: 10, y: 20, w: 4, h: 2, bits: Uint8Array.from([1, 1, 0, 0, 1, 1, 0, 0]) };
  it('doubles by repeating each pixel', () => {
    const r = resampleCrop(crop, { x: 10, y: 20, w: 8, h: 4 }, 100, 100);
    expect([r.x, r.y, r.w, r.h]).toEqual([10, 20, 8, 4]);
    expect(Array.from(r.bits.slice(0, 8))).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
    expect(r.bits.reduce((a, b) => a + b, 0)).toBe(16);
  });
  it('halves by taking the pixel under each new centre, moving with the rect', () => {
    const r = resampleCrop(crop, { x: 50.4, y: 60, w: 2, h: 1 }, 100, 100);
    expect([r.x, r.y, r.w, r.h]).toEqual([50, 60, 2, 1]);
    expect(Array.from(r.bits)).toEqual([1, 0]);
  });
  it('keeps at least one pixel and cuts at the image border', () => {
    const full = { ...crop, bits: new Uint8Array(8).fill(1) };
    expect(resampleCrop(full, { x: 10, y: 20, w: 0.2, h: 0.1 }, 100, 100)).toMatchObject({ x: 10, y: 20, w: 1, h: 1 });
    const r = resampleCrop(crop, { x: 96, y: 98, w: 8, h: 4 }, 100, 100);
    expect([r.x, r.y, r.w, r.h]).toEqual([96, 98, 4, 2]);
    expect(Array.from(r.bits)).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
  });
  it('is null when nothing set is left', () => {
    expect(resampleCrop(crop, { x: -6, y: 0, w: 8, h: 4 }, 100, 100)).toBeNull(); // only the clear half inside
    expect(resampleCrop(crop, { x: 200, y: 0, w: 8, h: 4 }, 100, 100)).toBeNull();
  });
});

describe('fitting copied shapes into another image', () => {
  it('clamps boxes and points, drops what is left empty', () => {
    expect(fitShape({ type: 'box', label: 'a', x: 90, y: 10, w: 30, h: 10 }, 100, 100)).toEqual({ type: 'box', label: 'a', x: 90, y: 10, w: 10, h: 10 });
    expect(fitShape({ type: 'box', label: 'a', x: 150, y: 10, w: 30, h: 10 }, 100, 100)).toBe(null);
    expect(fitShape({ type: 'polygon', points: [[0, 0], [200, 0], [200, 200]] }, 100, 100).points).toEqual([[0, 0], [100, 0], [100, 100]]);
    expect(fitShape({ type: 'polygon', points: [[150, 0], [200, 0], [200, 200]] }, 100, 100)).toBe(null);
    expect(fitShape({ type: 'mask', rle: { size: [10, 20], counts: [200] } }, 20, 10)).not.toBe(null);
    expect(fitShape({ type: 'mask', rle: { size: [10, 20], counts: [200] } }, 10, 20)).toBe(null);
  });
});
