/* vae-book site helpers: draw the saved plotly figures, highlight the on-page contents entry. */
(function () {
  'use strict';
  // Figures are saved once, as plotly JSON (<script type="application/vnd.plotly.v1+json">
  // beside an empty .plotly-graph-div): draw each with the page's one copy of plotly.js.
  function drawFigures() {
    if (!window.Plotly) return;
    document.querySelectorAll('script[type="application/vnd.plotly.v1+json"]').forEach(function (s) {
      var div = s.parentNode.querySelector('.plotly-graph-div'), fig;
      try { fig = JSON.parse(s.textContent); } catch (e) { console.warn('figure', e); return; }
      var config = Object.assign({responsive: true, displaylogo: false}, fig.config || {});
      // a figure saved wider than the column is drawn at the column's width (not clipped), so its
      // slider and right-hand panels stay visible and clickable, on a phone too
      var layout = Object.assign({}, fig.layout || {}), avail = div.parentNode.clientWidth;
      if (layout.width && avail && layout.width > avail) {
        delete layout.width; layout.autosize = true; div.style.width = '100%';
      }
      Plotly.newPlot(div, {data: fig.data || [], layout: layout, frames: fig.frames || [],
                           config: config});
    });
  }
  // plotly.js typesets $...$ labels with MathJax 3 once MathJax is ready
  var mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
  (mj ? mj.then(drawFigures, drawFigures) : Promise.resolve().then(drawFigures));

  var links = Array.prototype.slice.call(document.querySelectorAll('.book-toc a'));
  if (!links.length || !('IntersectionObserver' in window)) return;
  var byId = {};
  links.forEach(function (a) { byId[decodeURIComponent(a.hash.slice(1))] = a; });
  var obs = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      if (!e.isIntersecting) return;
      links.forEach(function (a) { a.classList.remove('active'); });
      var a = byId[e.target.id]; if (a) a.classList.add('active');
    });
  }, {rootMargin: '0px 0px -70% 0px'});
  Object.keys(byId).forEach(function (id) { var h = document.getElementById(id); if (h) obs.observe(h); });
})();
