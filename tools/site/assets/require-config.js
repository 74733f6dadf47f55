/* The widget manager finds its icon fonts next to the AMD module URLs of @jupyter-widgets/*:
   point those at the site's own copy (default: <page dir>/@jupyter-widgets/, which does not exist). */
(function () {
  var src = document.currentScript.src, base = src.slice(0, src.lastIndexOf('/') + 1);
  require.config({paths: {'@jupyter-widgets': base + 'html-manager'}});
})();
