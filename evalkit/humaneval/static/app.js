// Blind pairwise rating page (evalkit humaneval serve). The server decides everything that matters: which item,
// which video is left (A) and right (B), what a vote means. This script shows it, keeps the two videos in sync,
// and posts each vote the moment it is cast. Keys: A / ArrowLeft = A, B / ArrowRight = B, T = tie (no arrow casts a
// tie); ArrowUp / ArrowDown and 1-9 only move between questions, so moving never casts a vote.
"use strict";
const $ = (id) => document.getElementById(id);
const ui = { questions: [], item: null, answers: {}, focus: 0, shownAt: 0, busy: false, msMax: 0 };

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" },
                                           body: JSON.stringify(body) };
  const resp = await fetch(path, { credentials: "same-origin", ...opts });
  let data = {};
  try { data = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) { const err = new Error(data.error || resp.statusText); err.status = resp.status; throw err; }
  return data;
}

function show(section) {
  for (const id of ["login", "need-token", "study", "done"]) $(id).hidden = id !== section;
}

function setError(msg) { $("error").textContent = msg || ""; }
$("error").addEventListener("click", () => setError(""));     // the bar is dismissed by a click, or the next save

function renderProgress(p) {
  if (!p) { $("progress").textContent = ""; return; }
  const item = ui.item ? ui.item.position + 1 : Math.min(p.items_done + 1, p.items_total);
  $("progress").textContent = p.items_done >= p.items_total
    ? `${p.items_total} of ${p.items_total} items done`
    : `Item ${item} of ${p.items_total} \u00b7 ${p.answers} / ${p.answers_total} answers`;
}

function renderQuestions() {
  const ol = $("questions");
  ol.replaceChildren();
  ui.questions.forEach((q, i) => {
    const li = document.createElement("li");
    li.dataset.question = q.id;
    li.className = i === ui.focus ? "focus" : "";
    const num = document.createElement("span"); num.className = "num"; num.textContent = `${i + 1}.`;
    const txt = document.createElement("div");
    const lab = document.createElement("span"); lab.className = "label"; lab.textContent = q.label;
    const qt = document.createElement("span"); qt.className = "text"; qt.textContent = q.text;
    txt.append(lab, qt);
    const ch = document.createElement("div"); ch.className = "choices";
    for (const [ans, text] of [["A", "A"], ["tie", "Tie"], ["B", "B"]]) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = text; b.dataset.answer = ans;
      if (ui.answers[q.id] === ans) b.classList.add("chosen");
      b.addEventListener("click", (ev) => { ev.stopPropagation(); ui.focus = i; castVote(q.id, ans); });
      ch.append(b);
    }
    li.append(num, txt, ch);
    li.addEventListener("click", () => { ui.focus = i; renderQuestions(); });
    ol.append(li);
  });
  $("next").disabled = !ui.questions.every((q) => ui.answers[q.id]);
}

async function castVote(question, answer) {
  if (!ui.item) return;
  setError("");
  $("saved").textContent = "saving\u2026";
  try {
    const ms = Math.round(performance.now() - ui.shownAt);
    const res = await api("/api/vote", { item: ui.item.item, question, answer,
                                         client_ms: ms >= 0 && ms <= ui.msMax ? ms : null });
    ui.answers = res.answers;
    renderProgress(res.progress);
    $("saved").textContent = "saved";
    const idx = ui.questions.findIndex((q) => q.id === question);
    const nextOpen = ui.questions.findIndex((q, i) => i > idx && !ui.answers[q.id]);
    const anyOpen = ui.questions.findIndex((q) => !ui.answers[q.id]);
    ui.focus = nextOpen >= 0 ? nextOpen : anyOpen >= 0 ? anyOpen : idx;
  } catch (e) {
    $("saved").textContent = "";
    if (e.status === 409) {            // the item is closed (moved on elsewhere, or done): show the current one
      try { await loadNext(); } catch (e2) { /* the message below stays */ }
      setError(`Not saved: ${e.message}. This page now shows your current item.`);
      return;
    }
    setError(`Not saved: ${e.message}. Check the connection and cast it again.`);
  }
  renderQuestions();
}

// --- two videos, one clock: A leads, B follows (both loop) ---
const vA = $("vA"), vB = $("vB");
let playing = true;
function syncB() {
  if (!ui.item || !isFinite(vB.duration) || vB.duration === 0) return;
  const target = vA.currentTime % vB.duration;
  const drift = Math.abs(vB.currentTime - target);
  if (drift > 0.12) vB.currentTime = target;
  if (vA.paused !== vB.paused) { if (vA.paused) vB.pause(); else vB.play().catch(() => {}); }
  $("sync").textContent = `sync \u0394 ${(drift * 1000).toFixed(0)} ms`;
}
setInterval(syncB, 200);
for (const ev of ["seeked", "play", "pause"]) vA.addEventListener(ev, syncB);
function playBoth() { playing = true; $("play").textContent = "Pause";
  vA.play().catch(() => {}); vB.play().catch(() => {}); }
function pauseBoth() { playing = false; $("play").textContent = "Play"; vA.pause(); vB.pause(); }
function restartBoth() { vA.currentTime = 0; vB.currentTime = 0; if (playing) playBoth(); }
$("play").addEventListener("click", () => (playing ? pauseBoth() : playBoth()));
$("restart").addEventListener("click", restartBoth);

async function loadNext() {
  setError("");
  const data = await api("/api/next");
  renderProgress(data.progress);
  if (data.done) { ui.item = null; vA.removeAttribute("src"); vB.removeAttribute("src"); show("done"); return; }
  ui.item = data;
  renderProgress(data.progress);
  ui.answers = data.answers || {};
  const open = ui.questions.findIndex((q) => !ui.answers[q.id]);
  ui.focus = open >= 0 ? open : 0;
  $("prompt").textContent = data.prompt;
  $("saved").textContent = "";
  vA.src = data.videos.A; vB.src = data.videos.B;
  vA.load(); vB.load();
  ui.shownAt = performance.now();
  playBoth();
  renderQuestions();
  show("study");
}

async function nextItem() {
  if ($("next").disabled || ui.busy) return;
  ui.busy = true;
  try { await loadNext(); } catch (e) { setError(e.message); } finally { ui.busy = false; }
}
$("next").addEventListener("click", nextItem);

document.addEventListener("keydown", (ev) => {
  if ($("study").hidden || ev.target.tagName === "INPUT" || ev.metaKey || ev.ctrlKey || ev.altKey) return;
  const k = ev.key;
  const q = ui.questions[ui.focus];
  const answer = { a: "A", A: "A", ArrowLeft: "A", b: "B", B: "B", ArrowRight: "B", t: "tie", T: "tie" }[k];
  if (answer && q) { ev.preventDefault(); castVote(q.id, answer); return; }
  if (/^[1-9]$/.test(k) && Number(k) <= ui.questions.length) { ui.focus = Number(k) - 1; renderQuestions(); return; }
  if (k === "ArrowUp" || k === "ArrowDown") {
    ev.preventDefault();
    ui.focus = Math.min(ui.questions.length - 1, Math.max(0, ui.focus + (k === "ArrowUp" ? -1 : 1)));
    renderQuestions();
    return;
  }
  if (k === " ") { ev.preventDefault(); playing ? pauseBoth() : playBoth(); return; }
  if (k === "r" || k === "R") { restartBoth(); return; }
  if (k === "Enter") { ev.preventDefault(); nextItem(); }
});

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-msg").textContent = "";
  try { await api("/api/login", { name: $("name").value }); await start(); }
  catch (e) { $("login-msg").textContent = e.message; }
});
$("logout").addEventListener("click", async () => {
  try { await api("/api/logout", {}); location.reload(); } catch (e) { setError(`Not signed out: ${e.message}`); }
});

async function start() {
  const st = await api("/api/state");
  ui.questions = st.questions;
  ui.msMax = st.client_ms_max;
  $("rater-name").textContent = st.rater || "";
  $("whoami").hidden = !st.rater;
  $("logout").hidden = !st.rater || st.mode !== "local";
  if (!st.rater) { renderProgress(null); show(st.mode === "local" ? "login" : "need-token"); return; }
  await loadNext();
}
start().catch((e) => setError(e.message));
