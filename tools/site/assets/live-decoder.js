/* vae-book: decode latent points in the page, no kernel.
 *
 * A weights file (assets/decoders/<name>.js, written by vae_book.web.write_decoder_js) registers
 * globalThis.VAEBookDecoders[name] = {latent_dim, label, layers: [{W, b, relu}], out_shape, sigmoid}
 * with base64 float16/float32 arrays. decode() runs the MLP exactly as vae_book.web.spec_decode does:
 * x = [z, c]; for each layer x = W x + b (ReLU but after the last); sigmoid for Bernoulli means.
 * Every `.vae-live` output (vae_book.web.live_decoder) becomes a live view: a latent plane to hover or
 * drag, an interpolation slider, or a class picker with a style plane. Without JavaScript the static
 * image inside it stays. Also runs under Node (module.exports) for the unit test.
 */
(function (root) {
  'use strict';
  var MIME = 'application/vnd.vae-book.live+json';
  var COLORS = ['#636efa', '#EF553B', '#00cc96', '#ab63fa', '#FFA15A', '#19d3f3', '#FF6692',
                '#B6E880', '#FF97FF', '#FECB52'];

  // ------------------------------------------------------------------ numbers
  function bytesOf(b64) {
    var s = root.atob(b64), out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  function half(h) {  // IEEE 754 binary16 -> number
    var s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    if (e === 0) return s * f * Math.pow(2, -24);
    if (e === 31) return f ? NaN : s * Infinity;
    return s * (1 + f / 1024) * Math.pow(2, e - 15);
  }
  var HALF = null;  // all 65536 half-precision values, built on first use
  function unpack(p) {  // {dtype, shape, data} -> Float32Array
    var bytes = bytesOf(p.data), dv = new DataView(bytes.buffer), n, out, i;
    if (p.dtype === 'f16') {
      if (!HALF) { HALF = new Float32Array(65536); for (i = 0; i < 65536; i++) HALF[i] = half(i); }
      n = bytes.length / 2; out = new Float32Array(n);
      for (i = 0; i < n; i++) out[i] = HALF[dv.getUint16(2 * i, true)];
    } else if (p.dtype === 'f32') {
      n = bytes.length / 4; out = new Float32Array(n);
      for (i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
    } else if (p.dtype === 'u8') {
      out = Float32Array.from(bytes);
    } else throw new Error('unknown dtype ' + p.dtype);
    return out;
  }
  var prepared = {};
  function prepare(name) {
    if (prepared[name]) return prepared[name];
    var raw = (root.VAEBookDecoders || {})[name];
    if (!raw) throw new Error('no decoder weights loaded for ' + name);
    var d = {name: name, fingerprint: raw.fingerprint, latent_dim: raw.latent_dim,
             out_shape: raw.out_shape, sigmoid: raw.sigmoid, label: null, layers: []};
    if (raw.label) d.label = {table: unpack(raw.label), n: raw.label.shape[0], dim: raw.label.shape[1]};
    raw.layers.forEach(function (l) {
      d.layers.push({W: unpack(l.W), b: unpack(l.b), nout: l.W.shape[0], nin: l.W.shape[1],
                     relu: l.relu});
    });
    d.size = d.out_shape.reduce(function (a, b) { return a * b; }, 1);
    return (prepared[name] = d);
  }
  // y = W x + b for W (nout, nin) row-major; accumulates in float64 like spec_decode
  function affine(W, b, x, nout, nin, relu) {
    var out = new Float64Array(nout);
    for (var j = 0; j < nout; j++) {
      var s = b[j], off = j * nin;
      for (var i = 0; i < nin; i++) s += W[off + i] * x[i];
      out[j] = relu && s < 0 ? 0 : s;
    }
    return out;
  }
  function decode(name, z, y) {  // -> Float64Array of out_shape's size (row-major)
    var d = prepare(name), D = d.latent_dim, x;
    if (z.length !== D) throw new Error(name + ' takes ' + D + ' latent numbers, got ' + z.length);
    if (d.label) {
      if (y === undefined || y === null || y < 0 || y >= d.label.n) throw new Error('bad label ' + y);
      x = new Float64Array(D + d.label.dim);
      for (var k = 0; k < d.label.dim; k++) x[D + k] = d.label.table[y * d.label.dim + k];
    } else x = new Float64Array(D);
    for (var i = 0; i < D; i++) x[i] = z[i];
    d.layers.forEach(function (l) { x = affine(l.W, l.b, x, l.nout, l.nin, l.relu); });
    if (d.sigmoid) for (var j = 0; j < x.length; j++) x[j] = 1 / (1 + Math.exp(-x[j]));
    return x;
  }

  var api = {MIME: MIME, unpack: unpack, half: half, decode: decode, prepare: prepare, views: []};
  if (typeof module !== 'undefined' && module.exports) { module.exports = api; return; }
  root.VAEBookLive = api;

  // ------------------------------------------------------------------ drawing
  function el(tag, attrs, parent) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    if (parent) parent.appendChild(e);
    return e;
  }
  function imageCanvas(parent, d, css) {
    var c = el('canvas', {width: d.out_shape[2] || 28, height: d.out_shape[1] || 28,
                          'class': 'vae-live-img ' + (css || '')}, parent);
    c.draw = function (px) {
      var ctx = c.getContext('2d'), im = ctx.createImageData(c.width, c.height);
      for (var i = 0; i < c.width * c.height; i++) {
        var v = Math.round(Math.min(1, Math.max(0, px[i])) * 255);
        im.data[4 * i] = im.data[4 * i + 1] = im.data[4 * i + 2] = v; im.data[4 * i + 3] = 255;
      }
      ctx.putImageData(im, 0, 0);
    };
    return c;
  }
  // a square canvas showing [-lim, lim]^2; onPick(z) while hovering or dragging
  function plane(parent, cfg, onPick) {
    var size = 280, lim = cfg.lim, c = el('canvas', {width: size, height: size, 'class': 'vae-live-plane',
      role: 'img', tabindex: '0', 'aria-label': 'latent plane: hover, drag or use the arrow keys'}, parent);
    var toPx = function (z) { return [(z[0] / lim + 1) * size / 2, (1 - z[1] / lim) * size / 2]; };
    var toZ = function (ev) {
      var r = c.getBoundingClientRect(), s = size / r.width;
      var px = (ev.clientX - r.left) * s, py = (ev.clientY - r.top) * s;
      return [(px / size * 2 - 1) * lim, (1 - py / size * 2) * lim];
    };
    var state = {z: [0, 0], path: null, dragging: false};
    var backdrop = cfg.points ? {z: unpack(cfg.points.z), n: cfg.points.z.shape[0],  // (n, 2) codes
                                 y: cfg.points.y ? unpack(cfg.points.y) : null} : null;
    c.draw = function () {
      var ctx = c.getContext('2d'), i;
      ctx.fillStyle = '#f4f6fa'; ctx.fillRect(0, 0, size, size);
      ctx.strokeStyle = '#d5dbe5'; ctx.lineWidth = 1;
      for (i = -Math.floor(lim); i <= lim; i++) {
        var p = toPx([i, i]);
        ctx.beginPath(); ctx.moveTo(p[0], 0); ctx.lineTo(p[0], size); ctx.stroke();
        ctx.beginPath(); ctx.moveTo(0, p[1]); ctx.lineTo(size, p[1]); ctx.stroke();
      }
      var pts = backdrop;
      if (pts) for (i = 0; i < pts.n; i++) {
        var q = toPx([pts.z[2 * i], pts.z[2 * i + 1]]);
        ctx.fillStyle = pts.y ? COLORS[pts.y[i] % COLORS.length] : '#8892a6';
        ctx.globalAlpha = 0.55; ctx.fillRect(q[0] - 1.5, q[1] - 1.5, 3, 3);
      }
      ctx.globalAlpha = 1;
      if (state.path) {
        var a = toPx(state.path[0]), b = toPx(state.path[1]);
        ctx.strokeStyle = '#212529'; ctx.lineWidth = 2; ctx.setLineDash([5, 4]);
        ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke(); ctx.setLineDash([]);
        [a, b].forEach(function (e) { ctx.fillStyle = '#212529'; ctx.fillRect(e[0] - 4, e[1] - 4, 8, 8); });
      }
      var m = toPx(state.z);
      ctx.strokeStyle = '#d62728'; ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(m[0], m[1], 6, 0, 2 * Math.PI); ctx.stroke();
    };
    c.set = function (z) { state.z = [Math.max(-lim, Math.min(lim, z[0])), Math.max(-lim, Math.min(lim, z[1]))];
                           c.draw(); onPick(state.z); };
    c.setPath = function (p) { state.path = p; };
    c.toZ = toZ; c.toPx = toPx;
    c.addEventListener('pointermove', function (ev) { if (ev.pointerType === 'mouse' || state.dragging) c.set(toZ(ev)); });
    c.addEventListener('pointerdown', function (ev) { state.dragging = true; c.setPointerCapture(ev.pointerId); c.set(toZ(ev)); ev.preventDefault(); });
    c.addEventListener('pointerup', function () { state.dragging = false; });
    c.addEventListener('keydown', function (ev) {
      var step = lim / 20, d = {ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step]}[ev.key];
      if (d) { c.set([state.z[0] + d[0], state.z[1] + d[1]]); ev.preventDefault(); }
    });
    return c;
  }
  function fmt(z) { return '(' + z.map(function (v) { return v.toFixed(2); }).join(', ') + ')'; }

  function build(box, cfg) {
    var d = prepare(cfg.model), ui = el('div', {'class': 'vae-live-ui', 'data-view': cfg.view});
    var row = el('div', {'class': 'vae-live-row'}, ui), view = {cfg: cfg, el: box, y: null};
    var left = el('div', {'class': 'vae-live-left'}, row), right = el('div', {'class': 'vae-live-right'}, row);
    var out = imageCanvas(right, d, 'vae-live-main');
    var readout = el('div', {'class': 'vae-live-readout', 'aria-live': 'polite'}, right);
    view.show = function (z) {  // decode one point and draw it: what every interaction does
      var px = decode(cfg.model, z, view.y);
      out.draw(px); view.z = z.slice();
      readout.textContent = 'z = ' + fmt(z) + (view.y !== null ? ' · class ' + cfg.classes[view.y] : '');
      return px;
    };
    if (cfg.view === 'plane' || cfg.view === 'classes') {
      view.plane = plane(left, cfg, view.show);
    }
    if (cfg.view === 'classes') {
      var pick = el('div', {'class': 'vae-live-classes', role: 'radiogroup', 'aria-label': 'class'}, ui);
      view.y = 0;
      cfg.classes.forEach(function (name, k) {
        var b = el('button', {type: 'button', role: 'radio', 'aria-checked': k === 0 ? 'true' : 'false',
                              text: name}, pick);
        b.addEventListener('click', function () {
          view.y = k;
          [].forEach.call(pick.children, function (x, j) { x.setAttribute('aria-checked', j === k ? 'true' : 'false'); });
          view.show(view.z);
        });
      });
      ui.insertBefore(pick, row);
      el('p', {'class': 'vae-live-help', text: 'Pick a class, then hover or drag over the style plane: ' +
               'the same style code is decoded under the chosen label.'}, ui);
      view.plane.set([0, 0]);
    }
    if (cfg.ends) {
      var z0 = cfg.ends.z[0], z1 = cfg.ends.z[1], name = function (i) {
        var y = cfg.ends.y; return 'test image ' + cfg.ends.index[i] + (y ? ' (' + cfg.classes[y[i]] + ')' : '');
      };
      if (cfg.view === 'interpolate') {
        var ends = el('div', {'class': 'vae-live-ends'}, left);
        [z0, z1].forEach(function (z, i) {
          var f = el('figure', {}, ends), c = imageCanvas(f, d, 'vae-live-end');
          c.draw(decode(cfg.model, z)); el('figcaption', {text: name(i)}, f);
        });
      }
      var lab = el('label', {'class': 'vae-live-slider'}, ui);
      el('span', {text: 'α'}, lab);
      var s = el('input', {type: 'range', min: '0', max: '1000', value: '0',
                           'aria-label': 'position between ' + name(0) + ' and ' + name(1)}, lab);
      var sv = el('span', {'class': 'vae-live-alpha', text: '0.00'}, lab);
      el('span', {'class': 'vae-live-slider-ends', text: name(0) + ' → ' + name(1)}, ui);
      view.alpha = function (a) {
        var z = z0.map(function (v, i) { return v + a * (z1[i] - v); });
        sv.textContent = a.toFixed(2); s.value = String(Math.round(a * 1000));
        if (view.plane) view.plane.set(z); else view.show(z);
      };
      s.addEventListener('input', function () { view.alpha(s.value / 1000); });
      if (view.plane) view.plane.setPath([z0, z1]);
      view.alpha(0);
      if (cfg.view === 'plane') el('p', {'class': 'vae-live-help', text: 'Hover or drag anywhere on the ' +
        'plane (dots: test images by class) and the decoder draws that point; the slider walks the ' +
        'dashed line between two test images.'}, ui);
    }
    if (cfg.classes && cfg.points && cfg.points.y) {
      var leg = el('div', {'class': 'vae-live-legend'}, ui);
      cfg.classes.forEach(function (n, k) {
        var i = el('span', {}, leg); el('i', {style: 'background:' + COLORS[k % COLORS.length]}, i);
        i.appendChild(document.createTextNode(n));
      });
    }
    box.appendChild(ui);
    box.classList.add('vae-live-on');
    return view;
  }

  function init() {
    [].forEach.call(document.querySelectorAll('script[type="' + MIME + '"]'), function (s) {
      var box = s.parentNode, cfg;
      try {
        cfg = JSON.parse(s.textContent);
        var w = (root.VAEBookDecoders || {})[cfg.model];
        if (!w) { console.warn('vae-book: no weights for ' + cfg.model + '; showing the static image'); return; }
        if (w.fingerprint !== cfg.fingerprint)
          console.warn('vae-book: ' + cfg.model + ' weights differ from those the page was made with');
        api.views.push(build(box, cfg));
      } catch (e) { console.warn('vae-book live decoder:', e); }
    });
    api.ready = true;
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})(typeof globalThis !== 'undefined' ? globalThis : this);
