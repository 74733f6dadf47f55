/* MathJax 3 settings for the book's pages (loaded before assets/mathjax/es5/tex-svg-full.js).
   MathJax 3, not nbconvert's default 2: plotly.js >= 3 typesets figure text only with MathJax 3/4. */
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  options: {ignoreHtmlClass: 'tex2jax_ignore|plotly-graph-div|vae-live'},
  svg: {fontCache: 'global'}
};
