/* ipywidgets 8 typesets labels with the MathJax 2 API (MathJax.Hub.Queue): map it onto MathJax 3. */
(function () {
  var MJ = window.MathJax;
  if (!MJ || MJ.Hub) return;
  MJ.Hub = {Queue: function () {
    Array.prototype.forEach.call(arguments, function (a) {
      if (!Array.isArray(a) || a[0] !== 'Typeset' || !a[2]) return;
      (MJ.startup && MJ.startup.promise || Promise.resolve()).then(function () {
        return MJ.typesetPromise && MJ.typesetPromise([a[2]]);
      }).catch(function (e) { console.warn('MathJax', e); });
    });
  }};
})();
