// A small, safe Markdown renderer for model answers.
//
// Safety comes from the order of work: the whole text is HTML-escaped first, and only then
// are the few Markdown constructs turned into tags this file writes itself. Link targets
// must be http(s) or mailto. Supported: fenced code blocks (also an unterminated fence
// while an answer is still streaming), inline code, headings, bullet and numbered lists,
// block quotes, horizontal rules, bold, italic, strikethrough, links, paragraphs.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// Placeholders use characters that escaped text can never contain.
const HOLD = "\u0000";

function inline(text) {
  const held = [];
  const hold = (html) => `${HOLD}${held.push(html) - 1}${HOLD}`;
  let s = text.replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (_, _ticks, code) =>
    hold(`<code>${code.trim() === "" ? code : code.replace(/^ (.*) $/s, "$1")}</code>`));
  s = s.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (whole, label, url) => {
    if (!/^(https?:\/\/|mailto:)/i.test(url)) return whole;
    return hold(`<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`);
  });
  s = s.replace(/(^|[\s(])(https?:\/\/[^\s<)]+[^\s<).,;:!?&])/g, (_, pre, url) =>
    pre + hold(`<a href="${url}" target="_blank" rel="noopener noreferrer">${url}</a>`));
  s = s
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/(^|[^*\w])\*(?=[^\s*])([^*]*?[^\s*])\*(?!\*)/g, "$1<em>$2</em>")
    .replace(/(^|[^\w])_(?=[^\s_])([^_]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
  return s.replace(new RegExp(`${HOLD}(\\d+)${HOLD}`, "g"), (_, i) => held[Number(i)]);
}

const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

function renderList(lines) {
  // One level of nesting by indentation is enough for chat answers.
  const ordered = /\d/.test(LIST_ITEM.exec(lines[0])[2]);
  const items = [];
  for (const line of lines) {
    const m = LIST_ITEM.exec(line);
    if (m && m[1].length < 2) items.push([m[3]]);
    else if (items.length) items[items.length - 1].push(line.trim());
  }
  const tag = ordered ? "ol" : "ul";
  const start = ordered ? Number.parseInt(LIST_ITEM.exec(lines[0])[2], 10) : 1;
  const attr = ordered && start !== 1 ? ` start="${start}"` : "";
  const body = items.map((parts) => {
    const [head, ...rest] = parts;
    const nested = rest.length && LIST_ITEM.test(rest[0]) ? renderList(rest) : "";
    const more = nested ? "" : rest.map((r) => `<br>${inline(r)}`).join("");
    return `<li>${inline(head)}${more}${nested}</li>`;
  }).join("");
  return `<${tag}${attr}>${body}</${tag}>`;
}

function renderBlocks(text) {
  const lines = text.split("\n");
  const out = [];
  let para = [];
  const flush = () => {
    if (para.length) out.push(`<p>${para.map(inline).join("<br>")}</p>`);
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!line.trim()) { flush(); continue; }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      flush();
      const level = Math.min(heading[1].length + 2, 6); // the page already has h1/h2
      out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      continue;
    }
    if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) { flush(); out.push("<hr>"); continue; }
    if (/^\s*&gt;/.test(line)) {
      flush();
      const quoted = [];
      while (i < lines.length && /^\s*&gt;/.test(lines[i])) {
        quoted.push(lines[i].replace(/^\s*&gt;\s?/, ""));
        i++;
      }
      i--;
      out.push(`<blockquote>${renderBlocks(quoted.join("\n"))}</blockquote>`);
      continue;
    }
    if (LIST_ITEM.test(line) && (!para.length || /^\s*([-*+]|1[.)])\s/.test(line))) {
      flush();
      const items = [];
      while (i < lines.length && (LIST_ITEM.test(lines[i]) || (/^\s+\S/.test(lines[i]) && items.length))) {
        items.push(lines[i]);
        i++;
      }
      i--;
      out.push(renderList(items));
      continue;
    }
    para.push(line);
  }
  flush();
  return out.join("");
}

// Splits escaped text into prose and fenced code; a fence left open runs to the end.
const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^\n]*$/;

export function renderMarkdown(source) {
  const lines = escapeHtml(String(source ?? "").replace(/\r\n?/g, "\n")).split("\n");
  const out = [];
  let prose = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (!open) { prose.push(lines[i]); continue; }
    out.push(renderBlocks(prose.join("\n")));
    prose = [];
    const code = [];
    const closer = new RegExp(`^ {0,3}${open[1][0] === "`" ? "`" : "~"}{${open[1].length},}\\s*$`);
    for (i++; i < lines.length && !closer.test(lines[i]); i++) code.push(lines[i]);
    const lang = open[2] ? ` data-lang="${open[2]}"` : "";
    out.push(`<div class="code-block"${lang}><button type="button" class="copy-code" `
      + `aria-label="Copy code">Copy</button><pre><code>${code.join("\n")}</code></pre></div>`);
  }
  out.push(renderBlocks(prose.join("\n")));
  return out.join("");
}
