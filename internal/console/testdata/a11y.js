// An accessibility check of the page as it is drawn, run by the browser
// tests on each screen (the rules of axe-core the console can break; axe
// itself cannot be fetched here). It returns one string per violation:
// form controls without a label, buttons and links without a name, images
// without alt, duplicate ids, aria references to missing ids, positive
// tabindex, not exactly one visible h1, skipped heading levels, no main
// landmark, no lang, no title, and text below the WCAG 2 AA contrast
// (4.5:1, 3:1 for large text) against its effective background.
(() => {
  const v = [];
  const visible = (el) => {
    const s = getComputedStyle(el);
    return s.display !== 'none' && s.visibility !== 'hidden' && el.getClientRects().length > 0;
  };
  const name = (el) => {
    const aria = el.getAttribute('aria-label');
    if (aria && aria.trim()) return aria.trim();
    const lb = el.getAttribute('aria-labelledby');
    if (lb) return lb.split(/\s+/).map((id) => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
    if (el.labels && el.labels.length) return Array.from(el.labels).map((l) => l.textContent).join(' ').trim();
    let t = (el.textContent || '').trim();
    if (!t) for (const img of el.querySelectorAll('img[alt]')) t += img.alt;
    return t || (el.getAttribute('title') || '').trim();
  };
  const desc = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (typeof el.className === 'string' && el.className ? '.' + el.className : '');
  if (!document.documentElement.lang) v.push('html has no lang');
  if (!document.title.trim()) v.push('the page has no title');
  if (!document.querySelector('main')) v.push('no main landmark');
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!name(el)) v.push('form control without a label: ' + desc(el));
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (visible(el) && !name(el)) v.push('control without an accessible name: ' + desc(el));
  }
  for (const el of document.querySelectorAll('img')) if (!el.hasAttribute('alt')) v.push('image without alt: ' + desc(el));
  const ids = new Set();
  for (const el of document.querySelectorAll('[id]')) {
    if (ids.has(el.id)) v.push('duplicate id: ' + el.id);
    ids.add(el.id);
  }
  for (const el of document.querySelectorAll('[aria-describedby], [aria-labelledby], label[for]')) {
    for (const a of ['aria-describedby', 'aria-labelledby', 'for']) {
      for (const id of (el.getAttribute(a) || '').split(/\s+/).filter(Boolean)) {
        if (!document.getElementById(id)) v.push(a + ' names a missing id ' + id + ' on ' + desc(el));
      }
    }
  }
  for (const el of document.querySelectorAll('[tabindex]')) {
    if (Number(el.getAttribute('tabindex')) > 0) v.push('positive tabindex: ' + desc(el));
  }
  const h1s = Array.from(document.querySelectorAll('h1')).filter(visible);
  if (h1s.length !== 1) v.push(h1s.length + ' visible h1 elements');
  let prev = 0;
  for (const hd of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
    if (!visible(hd)) continue;
    const l = Number(hd.tagName[1]);
    if (prev && l > prev + 1) v.push('heading level skips from h' + prev + ' to h' + l + ': ' + hd.textContent.trim());
    prev = l;
  }
  const rgb = (s) => {
    const m = /rgba?\(([^)]+)\)/.exec(s);
    if (!m) return null;
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = (c) => {
    const f = (x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  for (const el of document.querySelectorAll('body *')) {
    if (!visible(el) || el.closest(':disabled')) continue;
    if (!Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const s = getComputedStyle(el);
    const fg = rgb(s.color);
    if (!fg) continue;
    const L1 = lum(fg);
    const L2 = lum(background(el));
    const ratio = (Math.max(L1, L2) + 0.05) / (Math.min(L1, L2) + 0.05);
    const size = parseFloat(s.fontSize);
    const need = size >= 24 || (Number(s.fontWeight) >= 700 && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) v.push('contrast ' + ratio.toFixed(2) + ':1 < ' + need + ':1: ' + desc(el) + ' "' + el.textContent.trim().slice(0, 30) + '"');
  }
  return v;
})()
