// The page: controls, pictures, the camera loop. The model work is in engine.js, the camera in camera.js.
// window.fastnstPage exposes the page's state for tests and benchmarks/web.py.

import { Camera, FpsCounter } from "./camera.js";
import { loadRuntime, Stylizer, styleWeights } from "./engine.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const page = {
  manifest: null,
  runtime: null,
  stylizer: null,
  sessions: new Map(), // model index -> Promise<Stylizer>: switching back is instant
  picture: null, // the last image opened: { bitmap, name }
  camera: null,
  fps: null,
  frames: 0, // camera frames stylized
  cameraLoops: 0, // camera loops running (one at most)
  modelIndex: null, // the model in use (the menu goes back to it when another fails to load)
  pictures: 0, // opened pictures stylized (each change of model, style or strength counts)
  lastMs: null, // milliseconds of the last stylization (pixels in, pixels out)
  ready: null, // resolves when the first model has loaded, rejects when the page cannot start
};
window.fastnstPage = page;

function setStatus(text, state) {
  $("status").textContent = text;
  if (state) document.body.dataset.state = state;
}

function fail(message) {
  setStatus(message, "error");
  console.error(message);
}

// The size to stylize at: the longer side at most `limit` pixels (0: the picture's own size), never enlarged.
function fitted(width, height, limit) {
  const scale = limit > 0 ? Math.min(1, limit / Math.max(width, height)) : 1;
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

function currentWeights() {
  const count = page.stylizer.model.styles.length;
  const a = Number($("style").value || 0);
  const b = Number($("style2").value);
  return styleWeights(count, a, b === a ? -1 : b, Number($("mix").value));
}

// Every stylization goes through one queue: a session never runs two frames at once (WebGPU refuses to,
// WebAssembly would only share the cores), and a camera frame cannot land on a picture or the reverse.
let queue = Promise.resolve();

function exclusive(task) {
  const run = queue.then(task, task);
  queue = run.catch(() => {});
  return run;
}

function cameraOn() {
  return page.camera?.running ?? false;
}

// Draw `source` (an image, video or canvas) into the input canvas at the chosen resolution, stylize it and
// show the result in the output canvas: its [width, height], or null when `wanted()` says, before or after
// the model ran, that the result is no longer wanted (the camera stopped, another picture was opened).
function render(source, width, height, wanted, limit = Number($("resolution").value)) {
  return exclusive(async () => {
    if (!wanted()) return null;
    const [w, h] = fitted(width, height, limit);
    const inCanvas = $("input");
    [inCanvas.width, inCanvas.height] = [w, h];
    const ctx = inCanvas.getContext("2d", { willReadFrequently: true });
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(source, 0, 0, w, h);
    const pixels = ctx.getImageData(0, 0, w, h).data;
    const start = performance.now();
    const out = await page.stylizer.run(pixels, w, h, currentWeights(), Number($("strength").value));
    if (!wanted()) return null;
    const outCanvas = $("output");
    [outCanvas.width, outCanvas.height] = [w, h];
    outCanvas.getContext("2d").putImageData(new ImageData(out, w, h), 0, 0);
    page.lastMs = performance.now() - start;
    return [w, h];
  });
}

// The styles' names, as the download's file name and the status line use them.
function styleLabel() {
  const names = page.stylizer.model.styles;
  const a = Number($("style").value || 0);
  const b = Number($("style2").value);
  const mix = Number($("mix").value);
  return b >= 0 && b !== a ? `${names[a]}-${names[b]}-${Math.round(mix * 100)}` : names[a] || page.stylizer.model.name;
}

let rendering = null;
let renderAgain = false;

// Stylize the opened picture; a change made while it runs is applied by one more run, never lost: the loop
// ends, and `rendering` is cleared, in one synchronous step after its last check of `renderAgain`.
function stylizePicture() {
  if (!page.picture || !page.stylizer || cameraOn()) return rendering;
  renderAgain = true;
  rendering ??= (async () => {
    while (renderAgain) {
      renderAgain = false;
      await renderPicture();
    }
    rendering = null;
  })();
  return rendering;
}

async function renderPicture() {
  const picture = page.picture;
  const wanted = () => page.picture === picture && !cameraOn();
  setStatus(`Stylizing ${picture.name}…`, "busy");
  try {
    const size = await render(picture.bitmap, picture.bitmap.width, picture.bitmap.height, wanted);
    if (!size || !wanted()) return;
    await offerDownload(picture.name);
    page.pictures++;
    const [w, h] = size;
    setStatus(`${picture.name}: ${w}×${h} in ${Math.round(page.lastMs)} ms. Download it, or change the model, style or strength.`, "done");
  } catch (error) {
    if (wanted()) fail(`Could not stylize ${picture.name}: ${error.message}`);
  }
}

async function offerDownload(name) {
  const blob = await new Promise((resolve) => $("output").toBlob(resolve, "image/png")); // the canvas as it is now
  const link = $("download");
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(blob);
  link.download = `${name.replace(/\.[^.]*$/, "")}_${styleLabel()}.png`;
  link.hidden = cameraOn();
}

async function openFile(file) {
  if (!file) return;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { colorSpaceConversion: "none", premultiplyAlpha: "none", imageOrientation: "from-image" });
  } catch {
    fail(`${file.name}: not an image this browser can read; use a PNG, JPEG or WebP`);
    return;
  }
  stopCamera();
  page.picture = { bitmap, name: file.name };
  await stylizePicture();
}

let cameraGeneration = 0; // a camera loop runs while its generation is the current one: one loop at a time

async function startCamera() {
  if (cameraOn() || $("camera").disabled) return;
  $("camera").disabled = true; // until the browser answers: a second click would open a second stream
  page.camera ??= new Camera($("video"));
  try {
    await page.camera.start();
  } catch (error) {
    fail(error.message);
    return;
  } finally {
    $("camera").disabled = false;
  }
  $("camera").textContent = "Stop camera";
  $("download").hidden = true;
  page.fps.reset();
  setStatus("Camera on: every frame is stylized in this browser.", "camera");
  cameraLoop(++cameraGeneration);
}

function stopCamera() {
  if (!cameraOn()) return;
  cameraGeneration++;
  page.camera.stop();
  $("camera").textContent = "Start camera";
  $("fps").textContent = "";
  setStatus("Camera off. Drop an image or start the camera again.", "ready");
}

async function cameraLoop(generation) {
  const video = $("video");
  const wanted = () => generation === cameraGeneration && cameraOn();
  page.cameraLoops++;
  while (wanted()) {
    if (page.stylizer && video.readyState >= 2 && video.videoWidth > 0) {
      try {
        if (await render(video, video.videoWidth, video.videoHeight, wanted)) {
          page.frames++;
          page.fps.tick();
        }
      } catch (error) {
        if (wanted()) {
          stopCamera();
          fail(`Could not stylize the camera: ${error.message}`);
        }
        break;
      }
    }
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
  page.cameraLoops--;
}

function showFps(fps) {
  $("fps").textContent = `· ${fps.toFixed(1)} fps (${Math.round(page.lastMs)} ms per frame)`;
  $("fps").dataset.fps = fps.toFixed(2);
}

function fillModels(models) {
  const select = $("model");
  models.forEach((m, i) => select.add(new Option(m.styles.length > 1 ? `${m.name} (${m.styles.length} styles)` : m.name, String(i))));
}

function fillStyles(model) {
  const many = model.styles.length > 1;
  $("style-box").hidden = !many;
  $("mix-box").hidden = !many;
  const [style, style2] = [$("style"), $("style2")];
  style.length = 0;
  style2.length = 1;
  model.styles.forEach((name, i) => {
    style.add(new Option(name, String(i)));
    style2.add(new Option(name, String(i)));
  });
}

function sizeText(received, total) {
  const mb = (n) => (n / 1e6).toFixed(1);
  return total ? `${Math.round((100 * received) / total)}% of ${mb(total)} MB` : `${mb(received)} MB`;
}

async function selectModel(index) {
  const model = page.manifest.models[index];
  if (!page.sessions.has(index)) {
    const progress = (received, total) => {
      // only while this model is the one chosen: a load left behind must not take the status line back
      if ($("model").value === String(index)) setStatus(`Loading model ${model.name}: ${sizeText(received, total)}…`, "loading");
    };
    page.sessions.set(index, Stylizer.create(page.runtime, model, progress));
  }
  setStatus(`Loading model ${model.name}…`, "loading");
  let stylizer;
  try {
    stylizer = await page.sessions.get(index);
  } catch (error) {
    page.sessions.delete(index);
    if ($("model").value !== String(index)) return; // another model was chosen meanwhile
    if (page.modelIndex !== null) $("model").value = String(page.modelIndex);
    fail(`Could not load model ${model.name} (${model.url}): ${error.message}`);
    return;
  }
  if ($("model").value !== String(index)) return; // another model was chosen while this one loaded
  page.stylizer = stylizer;
  page.modelIndex = index;
  fillStyles(model);
  setStatus(`Ready: ${model.name}. Drop an image or start the camera.`, cameraOn() ? "camera" : "ready");
  await stylizePicture();
}

function showRuntime() {
  const { backend, threads } = page.runtime;
  const isolation = crossOriginIsolated ? "" : " (this page is not cross-origin isolated, so one thread)";
  $("backend-info").textContent = backend === "webgpu" ? "WebGPU" : `WebAssembly, ${threads} thread${threads > 1 ? "s" : ""}${isolation}`;
  $("fastnst-version").textContent = page.manifest.fastnst_version;
  $("runtime-version").textContent = page.manifest.runtime_version;
}

function wireControls() {
  $("model").addEventListener("change", (e) => selectModel(Number(e.target.value)));
  for (const id of ["style", "style2", "mix", "resolution"]) $(id).addEventListener("change", stylizePicture);
  $("strength").addEventListener("input", (e) => {
    $("strength-value").textContent = `${Math.round(100 * e.target.value)}%`;
  });
  $("strength").addEventListener("change", stylizePicture);
  $("side").addEventListener("change", (e) => {
    $("input").hidden = !e.target.checked;
    $("view").classList.toggle("side", e.target.checked);
  });
  $("backend").addEventListener("change", (e) => {
    params.set("backend", e.target.value);
    location.search = params.toString(); // ONNX Runtime loads one build per page
  });
  $("camera").addEventListener("click", () => (cameraOn() ? stopCamera() : startCamera()));
  $("file").addEventListener("change", (e) => openFile(e.target.files[0]));
  wireDrop();
}

function wireDrop() {
  const drop = $("drop");
  drop.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && $("file").click());
  document.addEventListener("dragover", (e) => {
    e.preventDefault();
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    document.body.classList.remove("dragging");
    openFile(e.dataTransfer.files[0]);
  });
}

// Time `count` stylizations of a width x height picture through the page's own path (canvas in, model,
// canvas out), after `warmup` unmeasured ones: milliseconds each (benchmarks/web.py).
page.timeFrames = async (width, height, count, warmup = 2) => {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext("2d");
  const gradient = ctx.createLinearGradient(0, 0, width, height);
  gradient.addColorStop(0, "#1e3a8a");
  gradient.addColorStop(1, "#f59e0b");
  ctx.fillStyle = gradient;
  ctx.fillRect(0, 0, width, height);
  const times = [];
  for (let i = 0; i < count + warmup; i++) {
    await render(canvas, width, height, () => true, 0);
    if (i >= warmup) times.push(page.lastMs);
  }
  return times;
};

async function init() {
  page.fps = new FpsCounter(showFps);
  wireControls();
  const response = await fetch("models.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`models.json: HTTP ${response.status}`);
  page.manifest = await response.json();
  if (!page.manifest.models.length) throw new Error("this page serves no models");
  fillModels(page.manifest.models);
  const want = params.get("backend") || "auto";
  $("backend").value = want;
  page.runtime = await loadRuntime(want, Number(params.get("threads") || 0), params.get("build"));
  showRuntime();
  await selectModel(0);
  if (!page.stylizer) throw new Error($("status").textContent);
}

page.ready = init().catch((error) => {
  if (document.body.dataset.state !== "error") fail(`The page could not start: ${error.message}`);
  throw error;
});
page.ready.catch(() => {}); // reported on the page; tests await page.ready themselves
