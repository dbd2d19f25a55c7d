// Light or dark: follows the system (prefers-color-scheme) until the person picks one, then remembers it.
(function () {
  const root = document.documentElement;
  const stored = localStorage.getItem("xray-theme");
  const system = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  root.dataset.theme = stored || system;
  root.classList.add("js");  // controls that need JavaScript show only with it (style.css: .needs-js)
  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("theme-switch");
    if (!button) return;
    // The button says what it will do.
    const show = () => { button.textContent = root.dataset.theme === "dark" ? "Switch to the light theme" : "Switch to the dark theme"; };
    show();
    button.addEventListener("click", () => {
      root.dataset.theme = root.dataset.theme === "dark" ? "light" : "dark";
      localStorage.setItem("xray-theme", root.dataset.theme);
      show();
    });
  });
})();
