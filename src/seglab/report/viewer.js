// seglab's mask viewer: the validation samples of a run, with the predicted and the true mask as
// layers over each image, every class switchable, an opacity slider, epoch stepping and sorting by
// per-image IoU. Plain JavaScript, no libraries and no network: the data sits in the page.
(function () {
  "use strict";
  const root = document.getElementById("seglab-viewer");
  const data = JSON.parse(document.getElementById("seglab-viewer-data").textContent);
  const [height, width] = data.size;
  const state = {
    layers: { prediction: true, truth: false },
    classOn: data.classes.map(() => true),
    opacity: 0.6,
    epoch: data.epochs.length - 1, // an index into data.epochs
    sort: "worst",
  };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("cannot decode an embedded image"));
      image.src = src;
    });
  }

  // Masks are grayscale PNGs whose pixel values are class indices: read them back exactly.
  const scratch = document.createElement("canvas");
  scratch.width = width;
  scratch.height = height;
  const scratchCtx = scratch.getContext("2d", { willReadFrequently: true });
  async function loadMask(src) {
    const image = await loadImage(src);
    scratchCtx.clearRect(0, 0, width, height);
    scratchCtx.drawImage(image, 0, 0);
    const rgba = scratchCtx.getImageData(0, 0, width, height).data;
    const labels = new Uint8Array(width * height);
    for (let i = 0; i < labels.length; i++) labels[i] = rgba[4 * i];
    return labels;
  }

  function meanIou(values) {
    const present = values.filter((v) => v !== null);
    return present.length ? present.reduce((a, b) => a + b, 0) / present.length : null;
  }
  const fmt = (v) => (v === null || v === undefined ? "–" : v.toFixed(3));

  function draw(sample) {
    const ctx = sample.canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(sample.photo, 0, 0, width, height);
    const picture = ctx.getImageData(0, 0, width, height);
    const px = picture.data;
    const alpha = state.opacity;
    const layers = [];
    if (state.layers.truth) layers.push(sample.truth);
    if (state.layers.prediction) layers.push(sample.predictions[state.epoch]);
    for (const labels of layers) {
      for (let i = 0; i < labels.length; i++) {
        const c = labels[i];
        if (c >= data.classes.length || !state.classOn[c]) continue; // ignore pixels and hidden classes
        const color = data.classes[c].color;
        const j = 4 * i;
        px[j] = px[j] * (1 - alpha) + color[0] * alpha;
        px[j + 1] = px[j + 1] * (1 - alpha) + color[1] * alpha;
        px[j + 2] = px[j + 2] * (1 - alpha) + color[2] * alpha;
      }
    }
    ctx.putImageData(picture, 0, 0);
    const scores = sample.iou[state.epoch];
    sample.score.textContent = `mIoU ${fmt(meanIou(scores))}`;
    sample.table.replaceChildren(
      el("tr", {}, el("th", {}, "class"), el("th", {}, `IoU, epoch ${data.epochs[state.epoch]}`), el("th", {}, "by epoch")),
      ...data.classes.map((cls, c) => el("tr", {},
        el("td", {}, el("span", { class: "swatch", style: `background: rgb(${cls.color.join(",")})` }), cls.name),
        el("td", { class: "num" }, fmt(scores[c])),
        el("td", {}, sparkline(sample.iou.map((row) => row[c]), cls.color)))),
    );
  }

  function sparkline(values, color) {
    const canvas = el("canvas", { width: 90, height: 18, class: "spark" });
    const ctx = canvas.getContext("2d");
    const x = (i) => (values.length > 1 ? (i * 88) / (values.length - 1) + 1 : 45);
    ctx.strokeStyle = `rgb(${color.join(",")})`;
    ctx.beginPath();
    values.forEach((v, i) => {
      if (v !== null) ctx.lineTo(x(i), 17 - v * 16);
    });
    ctx.stroke();
    ctx.fillStyle = "#333";
    ctx.fillRect(x(state.epoch) - 0.5, 0, 1, 18);
    return canvas;
  }

  function order(samples) {
    const sorted = samples.slice();
    if (state.sort === "worst") {
      const score = (s) => meanIou(s.iou[state.epoch]) ?? Infinity;
      sorted.sort((a, b) => score(a) - score(b) || a.index - b.index);
    }
    return sorted;
  }

  function render(samples, grid, epochLabel, slider) {
    slider.value = state.epoch;
    epochLabel.textContent = `epoch ${data.epochs[state.epoch]} of ${data.epochs[data.epochs.length - 1]}`;
    for (const sample of samples) draw(sample);
    grid.replaceChildren(...order(samples).map((s) => s.card));
    root.dataset.epoch = data.epochs[state.epoch];
    root.dataset.order = order(samples).map((s) => s.name).join("|");
  }

  async function main() {
    if (!data.epochs.length) {
      root.append(el("p", { class: "muted" }, "No finished epoch yet: the viewer fills in as training goes."));
      return;
    }
    const samples = await Promise.all(data.samples.map(async (s, index) => ({
      index, name: s.name, iou: s.iou,
      photo: await loadImage(s.image),
      truth: await loadMask(s.truth),
      predictions: await Promise.all(s.predictions.map(loadMask)),
    })));
    const grid = el("div", { class: "grid" });
    for (const sample of samples) {
      sample.canvas = el("canvas", { width, height, class: "sample", "data-sample": sample.name });
      sample.score = el("span", { class: "score" });
      sample.table = el("table", { class: "iou" });
      sample.card = el("figure", { class: "card", "data-sample": sample.name }, sample.canvas,
        el("figcaption", {}, el("b", {}, sample.name), " ", sample.score), sample.table);
    }
    const slider = el("input", { type: "range", min: 0, max: data.epochs.length - 1, step: 1, "data-control": "epoch" });
    const epochLabel = el("span", { class: "epoch" });
    const update = () => render(samples, grid, epochLabel, slider);
    const step = (delta) => {
      state.epoch = Math.min(data.epochs.length - 1, Math.max(0, state.epoch + delta));
      update();
    };
    slider.addEventListener("input", () => { state.epoch = Number(slider.value); update(); });

    const layerBox = (name, label) => el("label", {},
      el("input", Object.assign({ type: "checkbox", "data-layer": name, onchange: (e) => { state.layers[name] = e.target.checked; update(); } },
        state.layers[name] ? { checked: "" } : {})), ` ${label}`);
    const classBoxes = data.classes.map((cls, c) => el("label", { class: "class" },
      el("input", { type: "checkbox", checked: "", "data-class": cls.name, onchange: (e) => { state.classOn[c] = e.target.checked; update(); } }),
      el("span", { class: "swatch", style: `background: rgb(${cls.color.join(",")})` }), cls.name));
    const opacity = el("input", { type: "range", min: 0, max: 100, value: state.opacity * 100, "data-control": "opacity",
      oninput: (e) => { state.opacity = Number(e.target.value) / 100; update(); } });
    const sort = el("select", { "data-control": "sort", onchange: (e) => { state.sort = e.target.value; update(); } },
      el("option", { value: "worst" }, "worst per-image mIoU first"), el("option", { value: "file" }, "file order"));

    root.append(
      el("div", { class: "controls" },
        el("div", {}, el("b", {}, "Layers "), layerBox("prediction", "prediction"), layerBox("truth", "ground truth")),
        el("div", {}, el("b", {}, "Classes "), ...classBoxes),
        el("div", {}, el("b", {}, "Epoch "),
          el("button", { type: "button", "data-action": "prev-epoch", onclick: () => step(-1) }, "◀"), slider,
          el("button", { type: "button", "data-action": "next-epoch", onclick: () => step(1) }, "▶"), " ", epochLabel),
        el("div", {}, el("b", {}, "Opacity "), opacity, el("b", {}, "  Order "), sort)),
      grid);
    update();
    root.dataset.ready = "true";
  }

  main().catch((error) => {
    root.append(el("p", { class: "error" }, `The viewer failed: ${error.message}`));
    root.dataset.ready = "error";
  });
})();
