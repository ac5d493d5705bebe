// MathJax for pymdownx.arithmatex (generic mode): \( \) inline, \[ \] display. The
// renderer (tex-svg.js) is served by the site itself, so the pages render offline.
window.MathJax = {
  tex: {inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true,
        processEnvironments: true},
  options: {ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex"},
  svg: {fontCache: "global"}
};
// typeset again after each instant navigation (MathJax typesets the first page itself)
document$.subscribe(() => {
  if (window.MathJax && typeof MathJax.typesetPromise === "function") { MathJax.typesetPromise(); }
});
