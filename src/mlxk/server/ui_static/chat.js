// The mlx-knife chat page: talks to this server's own OpenAI-compatible API (same origin).
//
// State lives in the browser: chats in localStorage, the API key (when the server asks for
// one) in sessionStorage, so it is forgotten when the tab closes. Answers stream over
// fetch + server-sent events; Stop aborts the request, which makes the server cancel it.
// Images (vision models only) go as OpenAI image_url parts holding data URIs; localStorage keeps
// only their thumbnails (see images.js), and drops those of the oldest chats when it is full.

import { imageFiles, isImageDataUri, prepareImage } from "./images.js";
import { escapeHtml, renderMarkdown } from "./markdown.js";

const STORE_CHATS = "mlxk.chats.v1";
const STORE_CURRENT = "mlxk.currentChat";
const STORE_MODEL = "mlxk.model";
const STORE_KEY = "mlxk.apiKey";
const BADGES = ["chat", "vision", "tools", "reasoning"];
const MAX_IMAGES = 8; // per message: the server's default limit per request

const $ = (id) => document.getElementById(id);
const ui = {
  app: $("app"), model: $("model"), badges: $("model-badges"), newChat: $("new-chat"),
  toggleChats: $("toggle-chats"), sidebar: $("sidebar"), list: $("chat-list"), noChats: $("no-chats"),
  system: $("system-prompt"), temperature: $("temperature"), maxTokens: $("max-tokens"),
  tools: $("tools"), toolChoice: $("tool-choice"),
  banner: $("banner"), messages: $("messages"), emptyHint: $("empty-hint"), composer: $("composer"),
  prompt: $("prompt"), send: $("send"), stop: $("stop"),
  attach: $("attach"), imageInput: $("image-input"), attachments: $("attachments"),
  attachmentList: $("attachment-list"), attachmentNote: $("attachment-note"),
  keyDialog: $("key-dialog"), keyForm: $("key-form"), keyInput: $("api-key"), keyMessage: $("key-message"),
};

const state = {
  chats: loadChats(),
  current: null,       // the open chat object
  models: [],          // model cards from /v1/models (embedding models left out)
  controller: null,    // AbortController of the answer being streamed
  pending: [],         // images chosen for the next message: {name, full, thumb, width, height}
};

// ---------------------------------------------------------------------------- storage

function loadChats() {
  try {
    const chats = JSON.parse(localStorage.getItem(STORE_CHATS) || "[]");
    return Array.isArray(chats) ? chats : [];
  } catch {
    return [];
  }
}

// A chat as kept in localStorage: images by their thumbnail only (the full copy that was sent
// lives in memory for this page's lifetime).
function storable(chat) {
  const messages = chat.messages.map((m) => (m.images
    ? { ...m, images: m.images.map(({ full: _full, ...kept }) => kept) } : m));
  return { ...chat, messages };
}

function isQuotaError(err) {
  return err?.name === "QuotaExceededError" || err?.code === 22;
}

// Storage is full: forget the stored images of the least recently used chat that still has some
// (they stay on screen until the page is reloaded). False when no chat has any left to drop.
function dropOldestImages() {
  const chats = [...state.chats].sort((a, b) => a.updated - b.updated);
  for (const chat of chats) {
    const images = chat.messages.flatMap((m) => m.images || []).filter((img) => img.thumb);
    if (!images.length) continue;
    for (const img of images) { img.thumb = null; img.dropped = true; }
    return true;
  }
  return false;
}

function saveChats() {
  let dropped = false;
  for (;;) {
    try {
      localStorage.setItem(STORE_CHATS, JSON.stringify(state.chats.map(storable)));
      if (state.current) localStorage.setItem(STORE_CURRENT, state.current.id);
      break;
    } catch (err) {
      if (isQuotaError(err) && dropOldestImages()) { dropped = true; continue; }
      showBanner(`Could not save the chat in this browser: ${err.message}`);
      return;
    }
  }
  if (dropped) {
    showBanner("This browser's storage for the page is full: the images of the oldest chats are no "
      + "longer kept (their text is).");
  }
}

function newChatObject() {
  const last = state.current;
  return {
    id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
    title: "New chat", created: Date.now(), updated: Date.now(),
    model: ui.model.value || localStorage.getItem(STORE_MODEL) || "",
    system: last ? last.system : "", temperature: last ? last.temperature : "",
    maxTokens: last ? last.maxTokens : "512", tools: last ? last.tools : "",
    toolChoice: last ? last.toolChoice : "auto", messages: [],
  };
}

// ---------------------------------------------------------------------------- API access

let keyRequest = null; // one open key dialog shared by all requests that got a 401

function askForKey(message) {
  if (!keyRequest) {
    keyRequest = new Promise((resolve, reject) => {
      ui.keyMessage.textContent = message;
      ui.keyInput.value = "";
      const done = (fn, value) => {
        ui.keyForm.removeEventListener("submit", onSubmit);
        ui.keyDialog.removeEventListener("cancel", onCancel);
        if (ui.keyDialog.open) ui.keyDialog.close();
        keyRequest = null;
        fn(value);
      };
      const onSubmit = (ev) => {
        ev.preventDefault();
        const key = ui.keyInput.value.trim();
        if (key) done(resolve, key);
      };
      const onCancel = (ev) => {
        ev.preventDefault();
        done(reject, new Error("this server needs an API key; reload the page to enter it"));
      };
      ui.keyForm.addEventListener("submit", onSubmit);
      ui.keyDialog.addEventListener("cancel", onCancel);
      ui.keyDialog.showModal();
      ui.keyInput.focus();
    });
  }
  return keyRequest;
}

// fetch() against the API with the stored key; a 401 asks for a key and tries again.
async function api(path, options = {}) {
  for (;;) {
    const key = sessionStorage.getItem(STORE_KEY);
    const headers = { ...(options.headers || {}) };
    if (key) headers.Authorization = `Bearer ${key}`;
    let res;
    try {
      res = await fetch(path, { ...options, headers });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new Error(`cannot reach the server (${err.message})`);
    }
    if (res.status !== 401) return res;
    const refused = Boolean(key);
    sessionStorage.removeItem(STORE_KEY);
    const fresh = await askForKey(refused
      ? "The server refused that API key. Enter the key it was started with."
      : "This server was started with an API key. Enter it to continue; it is kept in this browser tab only.");
    sessionStorage.setItem(STORE_KEY, fresh);
  }
}

// The server's own words for a failed request: OpenAI's {"error": {"message": ...}} shape.
async function errorText(res) {
  let detail = "";
  try {
    const body = await res.json();
    detail = body?.error?.message || body?.detail || JSON.stringify(body);
  } catch {
    detail = res.statusText;
  }
  const hint = res.status === 503 ? " (the server is busy or the model cannot be loaded now; try again)"
    : res.status === 413 ? " (images make a request large: send fewer or smaller ones, or start the "
      + "server with a larger --max-body-bytes)" : "";
  return `Error ${res.status}: ${detail || "request failed"}${hint}`;
}

// ---------------------------------------------------------------------------- models

async function loadModels() {
  try {
    const res = await api("/v1/models");
    if (!res.ok) throw new Error(await errorText(res));
    const body = await res.json();
    state.models = (body.data || []).filter((m) =>
      m.model_type !== "embedding" && !(m.capabilities || []).includes("embeddings"));
  } catch (err) {
    ui.model.replaceChildren(new Option("no models", ""));
    showBanner(`Could not list the models: ${err.message}`);
    return;
  }
  ui.model.replaceChildren();
  if (!state.models.length) {
    ui.model.append(new Option("no chat models in the cache", ""));
    showBanner("No chat models in the cache. Pull one first, e.g. `mlxk pull mlx-community/Qwen2.5-0.5B-Instruct-4bit`.");
    return;
  }
  for (const m of state.models) ui.model.append(new Option(m.id, m.id));
  ui.model.disabled = false;
  const wanted = state.current?.model || localStorage.getItem(STORE_MODEL);
  if (wanted && state.models.some((m) => m.id === wanted)) ui.model.value = wanted;
  onModelChange();
}

function onModelChange() {
  const card = state.models.find((m) => m.id === ui.model.value);
  const caps = card?.capabilities || [];
  const shown = BADGES.filter((b) => caps.includes(b) || (b === "chat" && card?.model_type === "chat"));
  if (card?.model_type === "base") shown.unshift("base");
  ui.badges.replaceChildren(...shown.map((b) => {
    const span = document.createElement("span");
    span.className = `badge badge-${b}`;
    span.textContent = b;
    return span;
  }));
  if (card) {
    localStorage.setItem(STORE_MODEL, card.id);
    if (state.current) { state.current.model = card.id; saveChats(); }
  }
  attachImages(card);
}

// ---------------------------------------------------------------------------- images

function isVision(card) {
  return (card?.capabilities || []).includes("vision");
}

function selectedCard() {
  return state.models.find((m) => m.id === ui.model.value);
}

function notVisionText(card) {
  return `${card ? card.id : "This model"} does not take images (no "vision" badge): pick a vision `
    + "model to send images.";
}

// The attach control shows for vision models only; images already chosen stay (with a note)
// when the model changes, so picking a vision model again sends them.
function attachImages(card) {
  ui.attach.hidden = !isVision(card);
  renderPending();
}

// Files from the picker, a paste or a drop become images to send with the next message.
async function addImages(files) {
  const card = selectedCard();
  if (!isVision(card)) {
    showBanner(notVisionText(card));
    return;
  }
  const problems = [];
  for (const file of files) {
    if (state.pending.length >= MAX_IMAGES) {
      problems.push(`at most ${MAX_IMAGES} images per message`);
      break;
    }
    try {
      state.pending.push(await prepareImage(file));
    } catch (err) {
      problems.push(`${file.name || "the pasted file"}: ${err.message}`);
    }
  }
  showBanner(problems.length ? `Not attached: ${problems.join("; ")}.` : "");
  renderPending();
}

function renderPending() {
  ui.attachments.hidden = state.pending.length === 0;
  ui.attachmentList.replaceChildren(...state.pending.map((img, i) => {
    const li = document.createElement("li");
    li.className = "attachment";
    const pic = document.createElement("img");
    pic.src = img.thumb;
    pic.alt = img.name;
    pic.title = `${img.name} (${img.width}×${img.height})`;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "attachment-remove";
    remove.textContent = "×";
    remove.setAttribute("aria-label", `Remove image ${img.name}`);
    remove.addEventListener("click", () => {
      state.pending.splice(i, 1);
      renderPending();
      (ui.attachmentList.querySelector(".attachment-remove") || ui.prompt).focus();
    });
    li.append(pic, remove);
    return li;
  }));
  const vision = isVision(selectedCard());
  ui.attachmentNote.textContent = state.pending.length && !vision ? notVisionText(selectedCard()) : "";
  ui.attachments.classList.toggle("refused", !vision);
}

function imagesHtml(images) {
  const items = images.map((img) => {
    const src = isImageDataUri(img.full) ? img.full : isImageDataUri(img.thumb) ? img.thumb : null;
    return src ? `<img src="${escapeHtml(src)}" alt="${escapeHtml(img.name || "image")}">`
      : `<span class="image-dropped">${escapeHtml(img.name || "image")}: not kept in this browser</span>`;
  });
  return `<div class="message-images">${items.join("")}</div>`;
}

// ---------------------------------------------------------------------------- rendering

function showBanner(text) {
  ui.banner.textContent = text;
  ui.banner.hidden = !text;
}

function renderChatList() {
  const chats = [...state.chats].sort((a, b) => b.updated - a.updated);
  ui.noChats.hidden = chats.length > 0;
  ui.list.replaceChildren(...chats.map((chat) => {
    const li = document.createElement("li");
    li.className = "chat-item" + (chat === state.current ? " active" : "");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "chat-open";
    open.textContent = chat.title;
    open.title = chat.title;
    if (chat === state.current) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => { openChat(chat); closeSidebarIfNarrow(); });
    const del = document.createElement("button");
    del.type = "button";
    del.className = "chat-delete";
    del.textContent = "×";
    del.setAttribute("aria-label", `Delete chat: ${chat.title}`);
    del.addEventListener("click", () => deleteChat(chat));
    li.append(open, del);
    return li;
  }));
}

function messageElement(msg, index) {
  const el = document.createElement("article");
  el.className = `message ${msg.role}`;
  el.dataset.index = String(index);
  el.setAttribute("aria-label", msg.role === "user" ? "You" : "Assistant");
  fillMessage(el, msg, index);
  return el;
}

function fillMessage(el, msg, index) {
  const parts = [];
  if (msg.role === "user") {
    if (msg.images?.length) parts.push(imagesHtml(msg.images));
    if (msg.content || !msg.images?.length) {
      parts.push(`<div class="content user-text">${escapeHtml(msg.content)}</div>`);
    }
  } else {
    if (msg.reasoning) {
      // Open while the model thinks, folded once the answer starts, unless the user chose.
      const open = (msg.reasoningOpen ?? (msg.streaming && !msg.content)) ? " open" : "";
      parts.push(`<details class="reasoning"${open}><summary>Reasoning</summary>`
        + `<div class="reasoning-body">${renderMarkdown(msg.reasoning)}</div></details>`);
    }
    if (msg.content) parts.push(`<div class="content">${renderMarkdown(msg.content)}</div>`);
    for (const call of msg.toolCalls || []) parts.push(toolCallHtml(call));
    if (msg.streaming && !msg.content && !msg.reasoning && !(msg.toolCalls || []).length) {
      parts.push('<div class="content pending">…</div>');
    }
    if (!msg.streaming && !msg.content && !msg.reasoning && !(msg.toolCalls || []).length && !msg.error) {
      parts.push(`<div class="content pending">${msg.stopped ? "(stopped before any text)" : "(no text)"}</div>`);
    }
    if (msg.error) parts.push(`<div class="error" role="alert">${escapeHtml(msg.error)}</div>`);
    if (msg.stats) parts.push(`<div class="stats">${escapeHtml(statsText(msg))}</div>`);
  }
  el.innerHTML = parts.join("");
  if (!msg.streaming) el.append(messageActions(msg, index));
}

function toolCallHtml(call) {
  let args = call.function?.arguments || "";
  try { args = JSON.stringify(JSON.parse(args), null, 2); } catch { /* still streaming */ }
  return `<div class="tool-call"><div class="tool-call-head">Tool call <code>`
    + `${escapeHtml(call.function?.name || "?")}</code></div><pre><code>${escapeHtml(args)}</code></pre></div>`;
}

function statsText(msg) {
  const s = msg.stats;
  const bits = [];
  if (s.promptTokens != null) bits.push(`prompt ${s.promptTokens}`);
  if (s.completionTokens != null) bits.push(`${s.completionTokens} tokens`);
  if (s.tokensPerSecond != null) bits.push(`${s.tokensPerSecond.toFixed(1)} tok/s`);
  if (s.ttft != null) bits.push(`TTFT ${s.ttft.toFixed(2)} s`);
  if (s.stopped) bits.push("stopped");
  else if (s.finishReason) bits.push(`finish: ${s.finishReason}`);
  return bits.join(" · ");
}

function messageActions(msg, index) {
  const bar = document.createElement("div");
  bar.className = "actions";
  const add = (label, aria, fn) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "action";
    b.textContent = label;
    b.setAttribute("aria-label", aria);
    b.addEventListener("click", fn);
    bar.append(b);
    return b;
  };
  const text = msg.content || msg.error || "";
  if (text) {
    const copy = add("Copy", msg.role === "user" ? "Copy message" : "Copy answer", async () => {
      await copyText(text);
      copy.textContent = "Copied";
      setTimeout(() => { copy.textContent = "Copy"; }, 1500);
    });
  }
  const last = index === state.current.messages.length - 1;
  if (msg.role === "assistant" && last) add("Regenerate", "Regenerate answer", regenerate);
  return bar;
}

function renderMessages() {
  const msgs = state.current ? state.current.messages : [];
  ui.messages.replaceChildren(ui.emptyHint, ...msgs.map(messageElement));
  ui.emptyHint.hidden = msgs.length > 0;
  scrollToEnd(true);
}

// Repaints the answer being streamed, at most once per frame.
let paintQueued = false;
function paintStreaming(msg) {
  if (paintQueued) return;
  paintQueued = true;
  requestAnimationFrame(() => {
    paintQueued = false;
    const index = state.current.messages.indexOf(msg);
    const el = ui.messages.querySelector(`article[data-index="${index}"]`);
    if (!el) return;
    const stick = nearEnd();
    fillMessage(el, msg, index);
    if (stick) scrollToEnd(true);
  });
}

function nearEnd() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function scrollToEnd(force) {
  if (force || nearEnd()) ui.messages.scrollTop = ui.messages.scrollHeight;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Plain-http pages on another host have no clipboard API; the old way still works there.
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

// ---------------------------------------------------------------------------- chats

function openChat(chat) {
  state.current = chat;
  ui.system.value = chat.system || "";
  ui.temperature.value = chat.temperature ?? "";
  ui.maxTokens.value = chat.maxTokens ?? "";
  ui.tools.value = chat.tools || "";
  ui.toolChoice.value = chat.toolChoice || "auto";
  if (chat.model && chat.model !== ui.model.value && state.models.some((m) => m.id === chat.model)) {
    ui.model.value = chat.model;
    onModelChange();
  }
  localStorage.setItem(STORE_CURRENT, chat.id);
  renderChatList();
  renderMessages();
}

function startNewChat() {
  if (state.controller) return;
  const chat = newChatObject();
  openChat(chat); // not stored until its first message
  showBanner("");
  ui.prompt.focus();
}

function deleteChat(chat) {
  if (chat === state.current && state.controller) return;
  state.chats = state.chats.filter((c) => c !== chat);
  saveChats();
  if (chat === state.current) {
    const next = [...state.chats].sort((a, b) => b.updated - a.updated)[0];
    if (next) openChat(next); else startNewChat();
  } else {
    renderChatList();
  }
}

function rememberSettings() {
  const chat = state.current;
  chat.system = ui.system.value;
  chat.temperature = ui.temperature.value;
  chat.maxTokens = ui.maxTokens.value;
  chat.tools = ui.tools.value;
  chat.toolChoice = ui.toolChoice.value;
  if (state.chats.includes(chat)) saveChats();
}

// ---------------------------------------------------------------------------- sending

// A stored image is sent as its full copy while the page holds it, else as its thumbnail (after a
// reload); one whose thumbnail was dropped for lack of storage is left out.
function userContent(m) {
  const urls = (m.images || []).map((img) => img.full || img.thumb).filter(isImageDataUri);
  if (!urls.length) return m.content || "";
  const parts = urls.map((url) => ({ type: "image_url", image_url: { url } }));
  if (m.content) parts.push({ type: "text", text: m.content });
  return parts;
}

function historyMessage(m) {
  if (m.role === "user") return { role: "user", content: userContent(m) };
  if (m.role !== "assistant" || !m.toolCalls?.length) return { role: m.role, content: m.content || "" };
  return {
    role: "assistant", content: m.content || null,
    tool_calls: m.toolCalls.map((c) => ({ id: c.id, type: "function", function: c.function })),
  };
}

// The user's tool definitions: a JSON array of OpenAI tools (one object is taken as a list of one).
function parseTools(text) {
  if (!text || !text.trim()) return null;
  let tools;
  try {
    tools = JSON.parse(text);
  } catch (err) {
    throw new Error(`Tools (in Settings) are not valid JSON: ${err.message}`);
  }
  return Array.isArray(tools) ? tools : [tools];
}

function requestBody(chat) {
  const messages = [];
  if ((chat.system || "").trim()) messages.push({ role: "system", content: chat.system });
  for (const m of chat.messages) {
    if (m.streaming || (m.role === "assistant" && m.error && !m.content && !m.toolCalls)) continue;
    messages.push(historyMessage(m));
  }
  const body = {
    model: chat.model || undefined, messages, stream: true,
    stream_options: { include_usage: true },
  };
  const tools = parseTools(chat.tools);
  if (tools) {
    body.tools = tools;
    body.tool_choice = chat.toolChoice || "auto";
  }
  const temperature = Number.parseFloat(chat.temperature);
  if (Number.isFinite(temperature)) body.temperature = temperature;
  const maxTokens = Number.parseInt(chat.maxTokens, 10);
  if (Number.isFinite(maxTokens)) body.max_tokens = maxTokens;
  return body;
}

async function send() {
  const text = ui.prompt.value.trim();
  const images = state.pending;
  if ((!text && !images.length) || state.controller) return;
  if (!ui.model.value) { showBanner("Pick a model first."); return; }
  if (images.length && !isVision(selectedCard())) { showBanner(notVisionText(selectedCard())); return; }
  const chat = state.current;
  rememberSettings();
  chat.model = ui.model.value;
  if (!state.chats.includes(chat)) state.chats.push(chat);
  const title = text || images.map((img) => img.name).join(", ");
  if (chat.title === "New chat") chat.title = title.length > 48 ? `${title.slice(0, 47)}…` : title;
  chat.messages.push(images.length ? { role: "user", content: text, images } : { role: "user", content: text });
  ui.prompt.value = "";
  state.pending = [];
  renderPending();
  await answer(chat);
}

async function regenerate() {
  const chat = state.current;
  if (state.controller || chat.messages.at(-1)?.role !== "assistant") return;
  chat.messages.pop();
  rememberSettings();
  await answer(chat);
}

function setStreaming(on) {
  ui.send.hidden = on;
  ui.stop.hidden = !on;
  ui.app.classList.toggle("streaming", on);
  ui.newChat.disabled = on;
}

async function answer(chat) {
  const msg = { role: "assistant", content: "", reasoning: "", toolCalls: [], streaming: true };
  chat.messages.push(msg);
  chat.updated = Date.now();
  showBanner("");
  saveChats(); // may put up a note of its own (storage full)
  renderChatList();
  renderMessages();
  const controller = new AbortController();
  state.controller = controller;
  setStreaming(true);
  const started = performance.now();
  let firstAt = null;
  let usage = null;
  let finishReason = null;
  try {
    const body = JSON.stringify(requestBody(chat));
    const res = await api("/v1/chat/completions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body, signal: controller.signal,
    });
    if (!res.ok) throw new Error(await errorText(res));
    for await (const event of sseEvents(res.body, controller.signal)) {
      if (event.error) throw new Error(`Error: ${event.error.message || JSON.stringify(event.error)}`);
      if (event.usage) usage = event.usage;
      const choice = event.choices?.[0];
      if (!choice) continue;
      const delta = choice.delta || {};
      if (delta.content || delta.reasoning_content || delta.tool_calls) firstAt ??= performance.now();
      if (delta.content) msg.content += delta.content;
      if (delta.reasoning_content) msg.reasoning += delta.reasoning_content;
      if (delta.tool_calls) mergeToolCalls(msg.toolCalls, delta.tool_calls);
      if (choice.finish_reason) finishReason = choice.finish_reason;
      paintStreaming(msg);
    }
  } catch (err) {
    if (err.name === "AbortError") msg.stopped = true;
    else msg.error = err.message;
  } finally {
    const ended = performance.now();
    msg.streaming = false;
    if (firstAt !== null || usage || msg.stopped) {
      const decodeSeconds = firstAt !== null ? (ended - firstAt) / 1000 : 0;
      const tokens = usage?.completion_tokens;
      msg.stats = {
        promptTokens: usage?.prompt_tokens ?? null,
        completionTokens: tokens ?? null,
        // Decode speed: tokens after the first over the time since the first arrived.
        tokensPerSecond: tokens > 1 && decodeSeconds > 0 ? (tokens - 1) / decodeSeconds : null,
        ttft: firstAt !== null ? (firstAt - started) / 1000 : null,
        finishReason, stopped: Boolean(msg.stopped),
      };
    }
    if (!msg.toolCalls.length) delete msg.toolCalls;
    if (!msg.reasoning) delete msg.reasoning;
    state.controller = null;
    setStreaming(false);
    chat.updated = Date.now();
    saveChats();
    if (chat === state.current) renderMessages();
    ui.prompt.focus();
  }
}

function mergeToolCalls(calls, deltas) {
  for (const d of deltas) {
    const i = d.index ?? calls.length;
    calls[i] ??= { id: "", type: "function", function: { name: "", arguments: "" } };
    const call = calls[i];
    if (d.id) call.id = d.id;
    if (d.function?.name) call.function.name += d.function.name;
    if (d.function?.arguments) call.function.arguments += d.function.arguments;
  }
}

// Server-sent events from a fetch body: yields each parsed `data:` JSON until [DONE].
async function* sseEvents(stream, signal) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
        if (!data) continue;
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
    if (!signal.aborted) throw new Error("the stream ended before the answer was complete");
  } finally {
    reader.cancel().catch(() => {}); // closes the connection if we stop reading early
  }
}

function stop() {
  state.controller?.abort();
}

// ---------------------------------------------------------------------------- wiring

function closeSidebarIfNarrow() {
  ui.app.classList.remove("sidebar-open");
  ui.toggleChats.setAttribute("aria-expanded", "false");
}

function wire() {
  ui.composer.addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
  ui.prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "Escape" || ui.keyDialog.open) return;
    if (ui.app.classList.contains("sidebar-open")) closeSidebarIfNarrow();
    else if (state.controller) stop();
  });
  document.addEventListener("click", (ev) => {
    const inside = ui.sidebar.contains(ev.target) || ui.toggleChats.contains(ev.target);
    if (!inside && ui.app.classList.contains("sidebar-open")) closeSidebarIfNarrow();
  });
  ui.stop.addEventListener("click", stop);
  ui.attach.addEventListener("click", () => ui.imageInput.click());
  ui.imageInput.addEventListener("change", async () => {
    const files = [...ui.imageInput.files];
    ui.imageInput.value = ""; // choosing the same file again fires change again
    await addImages(files);
    ui.prompt.focus();
  });
  // Pasted images (a screenshot from the clipboard); pasted text stays the textarea's business.
  ui.prompt.addEventListener("paste", (ev) => {
    const files = imageFiles(ev.clipboardData?.files);
    if (!files.length) return;
    ev.preventDefault();
    addImages(files);
  });
  // Files dropped anywhere on the page (a file dropped where nobody takes it would make the
  // browser leave the page to show it).
  const carriesFiles = (ev) => [...(ev.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragover", (ev) => {
    if (!carriesFiles(ev)) return;
    ev.preventDefault();
    ui.app.classList.add("dropping");
  });
  document.addEventListener("dragleave", (ev) => {
    if (!ev.relatedTarget) ui.app.classList.remove("dropping");
  });
  document.addEventListener("drop", (ev) => {
    ui.app.classList.remove("dropping");
    if (!carriesFiles(ev)) return;
    ev.preventDefault();
    addImages([...ev.dataTransfer.files]);
  });
  ui.newChat.addEventListener("click", startNewChat);
  ui.model.addEventListener("change", onModelChange);
  for (const input of [ui.system, ui.temperature, ui.maxTokens, ui.tools, ui.toolChoice]) {
    input.addEventListener("change", rememberSettings);
  }
  ui.toggleChats.addEventListener("click", () => {
    const open = ui.app.classList.toggle("sidebar-open");
    ui.toggleChats.setAttribute("aria-expanded", String(open));
  });
  // Another tab changed the stored chats: take its list (the open chat stays open).
  window.addEventListener("storage", (ev) => {
    if (ev.key !== STORE_CHATS || state.controller) return;
    state.chats = loadChats();
    const same = state.chats.find((c) => c.id === state.current?.id);
    if (same) openChat(same); else renderChatList();
  });
  ui.messages.addEventListener("click", (ev) => {
    const summary = ev.target.closest("details.reasoning > summary");
    const article = summary?.closest("article");
    const msg = article && state.current?.messages[Number(article.dataset.index)];
    if (msg) msg.reasoningOpen = !summary.parentElement.open; // the click is about to toggle it
  });
  ui.messages.addEventListener("click", async (ev) => {
    const button = ev.target.closest(".copy-code");
    if (!button) return;
    await copyText(button.parentElement.querySelector("code").textContent);
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
}

function start() {
  wire();
  const currentId = localStorage.getItem(STORE_CURRENT);
  const chat = state.chats.find((c) => c.id === currentId);
  // An answer that was streaming when the page went away is kept as far as it got.
  for (const c of state.chats) for (const m of c.messages) if (m.streaming) { m.streaming = false; m.stopped = true; }
  if (chat) openChat(chat); else startNewChat();
  loadModels();
  ui.prompt.focus();
}

start();
