// Inline SVG icons (no icon font, nothing from a CDN). Decorative: the control next to or
// around an icon always carries the words, so every icon is aria-hidden.
const PATHS = {
  camera:
    "M4 6h10a2 2 0 0 1 2 2v1.6l4.4-2.7A1 1 0 0 1 22 7.8v8.4a1 1 0 0 1-1.6.9L16 14.4V16a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2z",
  mic: "M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.9V21h2v-3.1a7 7 0 0 0 6-6.9z",
  hangup:
    "M12 9c-3.2 0-6.2.8-8.9 2.3a1.5 1.5 0 0 0-.6 1.9l1.3 2.6a1.5 1.5 0 0 0 1.8.7l3-1a1.5 1.5 0 0 0 1-1.4V12c1.6-.3 3.2-.3 4.8 0v2.1a1.5 1.5 0 0 0 1 1.4l3 1a1.5 1.5 0 0 0 1.8-.7l1.3-2.6a1.5 1.5 0 0 0-.6-1.9A18.4 18.4 0 0 0 12 9z",
  flag: "M5 3h2v18H5zM8 4h9l-2 4 2 4H8z",
};
const SLASHED = new Set(["camera", "mic"]);

/** An <svg> icon; `off` draws the slash of "camera off" / "microphone muted". */
export function icon(name, { off = false, size = 22 } = {}) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const attributes = { class: "icon", viewBox: "0 0 24 24", width: size, height: size, "aria-hidden": "true", focusable: "false" };
  for (const [k, v] of Object.entries(attributes)) svg.setAttribute(k, String(v));
  const body = document.createElementNS(ns, "path");
  body.setAttribute("fill", "currentColor");
  body.setAttribute("d", PATHS[name]);
  svg.append(body);
  if (off && SLASHED.has(name)) {
    const slash = document.createElementNS(ns, "path");
    for (const [k, v] of Object.entries({ stroke: "currentColor", "stroke-width": "2.2", "stroke-linecap": "round", d: "M3 3l18 18" })) {
      slash.setAttribute(k, v);
    }
    svg.append(slash);
  }
  return svg;
}

/** Fill every `[data-icon]` placeholder under `root`. */
export function fillIcons(root, { off = () => false } = {}) {
  for (const holder of root.querySelectorAll("[data-icon]")) {
    holder.replaceChildren(icon(holder.dataset.icon, { off: off(holder) }));
  }
}
