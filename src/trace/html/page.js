// The page's behaviour: draw the graph from the data Rust wrote, then show
// one state of the backward walk at a time. State 0 is the forward pass
// done; state k (1..n) is the walk at its k-th node, in the engine's order.
// Text goes in through textContent only, so no label can inject markup.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("trace-data").textContent);
  const $ = (id) => document.getElementById(id);
  const svg = $("svg");
  const NS = svg.namespaceURI; // the SVG namespace, without writing a URL
  const n = data.steps.length;
  const nodeById = new Map(data.nodes.map((g) => [g.id, g]));
  const stepByNode = new Map(data.steps.map((s, k) => [s.node, k]));
  const boxes = new Map(); // node id -> { g, grad }
  const edges = []; // { from, to, path }
  let state = 0;
  let pathNodes = new Set();
  let pathEdges = new Set();

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // A line of text with some parts bold: parts are strings, or [text, id or class].
  function line(tag, parts, attrs) {
    const e = el(tag, attrs);
    for (const p of parts) {
      if (typeof p === "string") e.append(p);
      else e.append(el("span", Object.assign({ class: "num" }, p[1]), p[0]));
    }
    return e;
  }

  // ---- the heading: output value, every leaf's gradient, notes ----------
  $("title").textContent = data.title;
  const out = data.nodes[data.nodes.length - 1];
  const summary = $("summary");
  summary.append("output ");
  summary.append(el("b", {}, out.label + " = " + out.value));
  for (const leaf of data.leaves) {
    summary.append(" \u00b7 ");
    summary.append(el("b", {}, data.d + "/\u2202" + paren(leaf.label) + " = " + leaf.gradient));
  }
  for (const note of data.notes) {
    $("notes").append(line("li", [note.label + ": ", [note.text, { class: "num note" }]]));
  }
  function paren(label) {
    return /^[\w%]+$/.test(label) ? label : "(" + label + ")";
  }

  // ---- the graph ------------------------------------------------------
  svg.setAttribute("width", data.width);
  svg.setAttribute("height", data.height);
  svg.setAttribute("viewBox", "0 0 " + data.width + " " + data.height);
  const edgeLayer = svgEl("g", { class: "edges" });
  const nodeLayer = svgEl("g", { class: "nodes" });
  svg.append(edgeLayer, nodeLayer);
  for (const g of data.nodes) {
    for (const j of g.inputs) {
      const a = nodeById.get(j);
      const x0 = a.x + a.w, y0 = a.y + a.h / 2, x1 = g.x, y1 = g.y + g.h / 2;
      const mid = (x0 + x1) / 2;
      const path = svgEl("path", {
        class: "edge",
        d: `M${x0},${y0} C${mid},${y0} ${mid},${y1} ${x1},${y1}`,
        "data-from": j,
        "data-to": g.id,
      });
      edgeLayer.append(path);
      edges.push({ from: j, to: g.id, path });
    }
    const box = svgEl("g", {
      class: "node " + (g.op === "constant" ? "constant" : g.op === "leaf" ? "leaf" : "op"),
      transform: `translate(${g.x},${g.y})`,
      "data-node": g.id,
      tabindex: g.step === null ? "-1" : "0",
      role: "button",
      "aria-label": g.label + ", " + g.line,
    });
    box.append(svgEl("title", {}, g.label + "\n" + g.op + " = " + g.value + (g.shape === "[]" ? "" : "  shape " + g.shape)));
    box.append(svgEl("rect", { width: g.w, height: g.h, rx: 7 }));
    box.append(svgEl("text", { x: 10, y: 18, class: "label" }, g.short));
    box.append(svgEl("text", { x: 10, y: 36 }, g.line));
    const grad = svgEl("text", { x: 10, y: 54, class: "grad" }, "");
    box.append(grad);
    nodeLayer.append(box);
    boxes.set(g.id, { g: box, grad });
    if (g.step !== null) {
      box.addEventListener("click", () => go(g.step + 1));
      box.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          go(g.step + 1);
        }
      });
    }
  }

  // ---- the side panel for one state ------------------------------------
  function showStep() {
    const panel = $("step");
    panel.replaceChildren();
    if (state === 0) {
      panel.append(el("h2", { id: "step-title" }, "Forward pass done"));
      panel.append(el("p", {}, "Every node holds its value (boxes, left to right). The backward pass starts at the output " +
        out.label + " with " + data.d + "/\u2202" + paren(out.label) + " = 1 and visits the nodes in the engine's order: " +
        "each node multiplies the global derivative it received by its local derivatives and passes the products back."));
      panel.append(el("p", { class: "muted" }, "Press Next, the Right arrow key, or click a node."));
      return;
    }
    const s = data.steps[state - 1];
    panel.append(el("h2", { id: "step-title" }, `Step ${state} of ${n}: ${s.label}`));
    const dl = el("dl");
    dl.append(el("dt", {}, "op"), el("dd", { id: "step-op" }, s.op));
    dl.append(el("dt", {}, "value"), line("dd", [[s.value, { id: "step-value" }]]));
    if (s.shape !== "[]") dl.append(el("dt", {}, "shape"), el("dd", {}, s.shape));
    panel.append(dl);

    const recv = el("div", { class: "card" });
    const dnode = data.d + "/\u2202" + paren(s.label);
    recv.append(el("h3", {}, "Global derivative received"));
    if (s.received.length === 0) {
      recv.append(line("p", [dnode + " = ", [s.global, { id: "step-global" }], " (the output: the walk starts here)"], { class: "eq" }));
    } else if (s.received.length === 1) {
      recv.append(line("p", [dnode + " = ", [s.global, { id: "step-global" }]], { class: "eq" }));
      recv.append(line("p", ["passed back by " + s.received[0].label + ": ", [s.received[0].amount, { class: "recv-amount" }]], { class: "muted" }));
    } else {
      recv.append(el("p", {}, `${s.label} is used ${s.received.length} times, so the contributions add up:`));
      const ul = el("ul");
      for (const r of s.received) ul.append(line("li", ["from " + r.label + ": ", [r.amount, { class: "recv-amount" }]], { class: "eq" }));
      recv.append(ul);
      recv.append(line("p", [dnode + " = sum = ", [s.global, { id: "step-global" }]], { class: "eq" }));
    }
    panel.append(recv);

    if (s.inputs.length === 0) {
      const leaf = el("div", { class: "card" });
      leaf.append(el("h3", {}, s.op === "leaf" ? "A leaf: its gradient is final" : "No inputs that need a gradient"));
      leaf.append(line("p", [dnode + " = ", [s.global, {}]], { class: "eq" }));
      panel.append(leaf);
    }
    for (const i of s.inputs) {
      const card = el("div", { class: "card input", "data-node": i.node });
      card.append(el("h3", {}, "\u2192 to input " + i.label));
      const local = [i.d + " = "];
      if (i.formula !== null && i.formula !== i.local) {
        local.push(i.formula + " = ");
        if (i.plugged !== i.formula && i.plugged !== i.local) local.push(i.plugged + " = ");
      }
      local.push([i.local, { class: "in-local" }]);
      card.append(line("p", local, { class: "eq" }));
      const passed = ["passes back "];
      if (i.product !== null) passed.push(i.product + " = ");
      passed.push([i.passed, { class: "in-passed" }]);
      card.append(line("p", passed, { class: "eq" }));
      panel.append(card);
    }
  }

  // ---- the graph for one state -----------------------------------------
  function showGraph() {
    const current = state > 0 ? data.steps[state - 1] : null;
    for (const g of data.nodes) {
      const b = boxes.get(g.id);
      const k = g.step;
      const done = k !== null && k < state - 1;
      const isCurrent = k !== null && k === state - 1;
      b.g.classList.toggle("done", done);
      b.g.classList.toggle("current", isCurrent);
      b.g.classList.toggle("on-path", pathNodes.has(g.id));
      b.grad.textContent = done || isCurrent ? "\u2202" + paren(out.label) + " = " + data.steps[k].boxGlobal : "";
    }
    for (const e of edges) {
      e.path.classList.toggle("active", current !== null && e.to === current.node &&
        current.inputs.some((i) => i.node === e.from));
      e.path.classList.toggle("on-path", pathEdges.has(e.from + ">" + e.to));
    }
    if (current) {
      const b = boxes.get(current.node);
      if (b) b.g.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  }

  function go(k) {
    state = Math.max(0, Math.min(n, k));
    $("slider").value = state;
    $("counter").textContent = state === 0 ? "forward values" : `step ${state} / ${n}`;
    $("first").disabled = $("prev").disabled = state === 0;
    $("next").disabled = $("last").disabled = state === n;
    showStep();
    showGraph();
  }

  // ---- paths -----------------------------------------------------------
  const select = $("leaf");
  select.append(el("option", { value: "" }, "choose a leaf"));
  data.leaves.forEach((leaf, k) => select.append(el("option", { value: String(k) }, leaf.label)));
  function showPaths() {
    const list = $("path-list");
    list.replaceChildren();
    pathNodes = new Set();
    pathEdges = new Set();
    if (select.value !== "") {
      const leaf = data.leaves[Number(select.value)];
      const dleaf = data.d + "/\u2202" + paren(leaf.label);
      if (leaf.paths === undefined) {
        list.append(el("p", { class: "muted" }, leaf.why));
      } else {
        list.append(el("p", {}, `${leaf.paths.length} path(s) from ${out.label} down to ${leaf.label}; along each, multiply the local derivatives:`));
        const ol = el("ol", { class: "paths" });
        for (const p of leaf.paths) {
          const symbols = p.links.map((l) => l.d).join(" \u00b7 ");
          const numbers = p.links.map((l) => "(" + l.local + ")").join("");
          ol.append(line("li", [symbols + " = " + numbers + " = ", [p.product, { class: "path-product" }]], { class: "eq" }));
        }
        list.append(ol);
        list.append(line("p", ["sum of the paths = ", [leaf.total, { id: "path-total" }]], { class: "eq" }));
        list.append(line("p", ["the backward walk gave " + dleaf + " = ", [leaf.gradient, { id: "path-gradient" }]], { class: "eq" }));
        for (const nodes of leaf.pathNodes) {
          nodes.forEach((id, k) => {
            pathNodes.add(id);
            if (k > 0) pathEdges.add(id + ">" + nodes[k - 1]);
          });
        }
      }
    }
    showGraph();
  }
  select.addEventListener("change", showPaths);

  // ---- controls --------------------------------------------------------
  const slider = $("slider");
  slider.max = n;
  slider.addEventListener("input", () => go(Number(slider.value)));
  $("first").addEventListener("click", () => go(0));
  $("prev").addEventListener("click", () => go(state - 1));
  $("next").addEventListener("click", () => go(state + 1));
  $("last").addEventListener("click", () => go(n));
  document.addEventListener("keydown", (e) => {
    // The slider and the leaf menu handle their own arrow keys.
    if (e.target === slider || e.target === select || e.altKey || e.ctrlKey || e.metaKey) return;
    const moves = { ArrowRight: state + 1, ArrowDown: state + 1, ArrowLeft: state - 1, ArrowUp: state - 1, Home: 0, End: n };
    if (e.key in moves) {
      e.preventDefault();
      go(moves[e.key]);
    }
  });
  go(0);
})();
