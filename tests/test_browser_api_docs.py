"""The interactive API page (/api/docs) in headless Chromium: every piece of text of Swagger UI
that a person reads has a contrast of at least 4.5:1 (WCAG AA) against what lies behind it,
with an operation opened (in "Try it out" mode)."""

from __future__ import annotations

from tests.browser_support import BROWSER_TEST, artifact, page, page_options, server  # noqa: F401

pytestmark = BROWSER_TEST

# For each visible element holding text: its colour and the first opaque background behind it
# (an element with a background image is skipped: its contrast cannot be read from styles).
CONTRAST = """
() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const blend = (top, under) => {
    const a = top.length > 3 ? top[3] : 1;
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a));
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const st = getComputedStyle(e);
      if (st.backgroundImage !== "none" && !st.backgroundImage.startsWith("url")) return null;
      const c = rgb(st.backgroundColor);
      if (c.length && (c.length < 4 || c[3] > 0)) {
        layers.push(c);
        if (c.length < 4 || c[3] === 1) break;
      }
    }
    return layers.reverse().reduce((under, top) => blend(top, under), [255, 255, 255]);
  };
  const out = [];
  for (const el of document.querySelectorAll("#swagger-ui *, .api-try-head *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    if (!own || !r.width || !r.height || st.visibility === "hidden" || st.opacity === "0") continue;
    const bg = background(el);
    if (!bg) continue;
    const fg = blend(rgb(st.color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    out.push({
      what: el.tagName.toLowerCase() + "." + [...el.classList].join("."),
      text: el.textContent.trim().slice(0, 30),
      ratio: Math.round(((a + 0.05) / (b + 0.05)) * 100) / 100,
      colors: st.color + " on " + bg.map(Math.round).join(","),
    });
  }
  return out;
}
"""


def test_swagger_ui_text_has_aa_contrast(page, server):
    page.goto(f"{server}/api/docs")
    page.wait_for_selector(".opblock-summary-method")
    methods = page.eval_on_selector_all(
        ".opblock-summary-method", "els => [...new Set(els.map(e => e.textContent))]"
    )
    assert {"GET", "POST", "PATCH", "DELETE"} <= set(methods)
    page.click(".opblock-post .opblock-summary")
    page.wait_for_selector(".opblock.is-open .execute")
    found = page.evaluate(CONTRAST)
    page.screenshot(path=str(artifact("admin/api-docs.png")))
    kinds = {f["what"].split(".")[1] if "." in f["what"] else f["what"] for f in found}
    assert {"opblock-summary-method", "opblock-summary-description"} <= kinds
    assert any(f["what"].startswith("a.") or f["what"] == "a." for f in found)  # links
    poor = sorted(
        {(f["what"], f["text"], f["ratio"], f["colors"]) for f in found if f["ratio"] < 4.5}
    )
    assert poor == [], "\n".join(map(str, poor))
