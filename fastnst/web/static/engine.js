// The model side of the page: ONNX Runtime Web, fastnst models, pixels to tensors and back.
// Everything about a model (input and output names, value range, styles, smallest size) comes from
// models.json, which `fastnst web` writes from each .onnx file's fastnst metadata: nothing here is
// specific to one model.

// The two builds of ONNX Runtime Web in ort/ (fastnst/web/runtime.py copies them): a visitor downloads one.
const BUILD_FILES = { wasm: "ort.wasm.min.mjs", webgpu: "ort.webgpu.min.mjs" };

// Whether this browser can run WebGPU here (an adapter, not only the API: headless or blocklisted GPUs have none).
export async function webgpuAvailable() {
  if (!("gpu" in navigator)) return false;
  try {
    return (await navigator.gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

// Load ONNX Runtime Web. `want`: "auto" (WebGPU where it works, else WebAssembly), "webgpu" or "wasm".
// `threads`: WebAssembly threads, 0 for the default: one per core up to 4 (ONNX Runtime's own default, half
// the cores, was 1.7-2.0x slower on 2 cores: docs/benchmarks.md). More than one needs a cross-origin isolated page
// (the COOP/COEP headers `fastnst web` sends); without it ONNX Runtime can only use one.
// `build`: which ONNX Runtime build to load, by default the backend's own; "webgpu" with the wasm backend
// runs the WebGPU build on its CPU kernels (the tests check that build where no GPU exists).
export async function loadRuntime(want, threads, build = null) {
  let backend = want === "wasm" ? "wasm" : (await webgpuAvailable()) ? "webgpu" : null;
  if (backend === null && want === "webgpu") throw new Error("WebGPU is not available in this browser; choose WebAssembly");
  backend ??= "wasm";
  build = BUILD_FILES[build] ? build : backend;
  const base = new URL("ort/", document.baseURI);
  const ort = await import(new URL(BUILD_FILES[build], base).href);
  ort.env.wasm.wasmPaths = base.href;
  ort.env.wasm.numThreads = !crossOriginIsolated ? 1 : threads > 0 ? threads : Math.min(4, navigator.hardwareConcurrency || 1);
  // WebAssembly runs in ONNX Runtime's worker, so the page stays responsive during a frame (it cost 2% on 2 cores).
  ort.env.wasm.proxy = build === "wasm";
  return { ort, backend, build, threads: ort.env.wasm.numThreads };
}

// The bytes at `url`, reporting (received, total) as they arrive: models are megabytes, so the page says how far it is.
export async function fetchBytes(url, onProgress) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status} ${response.statusText}`);
  const total = Number(response.headers.get("Content-Length")) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    onProgress?.(received, total);
  }
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}

// RGBA bytes (canvas ImageData) to the model's input: float32 NCHW RGB scaled to `range` ([low, high]).
export function toTensorData(rgba, width, height, range) {
  const [low, high] = range;
  const scale = (high - low) / 255;
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0, p = 0; p < plane; i += 4, p++) {
    out[p] = low + rgba[i] * scale;
    out[plane + p] = low + rgba[i + 1] * scale;
    out[2 * plane + p] = low + rgba[i + 2] * scale;
  }
  return out;
}

// The model's output (float32 NCHW RGB in `range`) to RGBA bytes, blended with the input's bytes:
// `strength` 1 is the stylized picture, 0 the photo, between a mix (the page's strength slider).
export function toPixels(data, width, height, range, input, strength = 1) {
  const [low, high] = range;
  const scale = 255 / (high - low);
  const plane = width * height;
  const out = new Uint8ClampedArray(4 * plane);
  const keep = 1 - strength;
  for (let i = 0, p = 0; p < plane; i += 4, p++) {
    out[i] = strength * (data[p] - low) * scale + keep * input[i];
    out[i + 1] = strength * (data[plane + p] - low) * scale + keep * input[i + 1];
    out[i + 2] = strength * (data[2 * plane + p] - low) * scale + keep * input[i + 2];
    out[i + 3] = 255;
  }
  return out;
}

// One fastnst model in one ONNX Runtime session.
export class Stylizer {
  constructor(runtime, session, model) {
    this.ort = runtime.ort;
    this.session = session;
    this.model = model;
  }

  // Download `model` (an entry of models.json) with progress, then create its session on the runtime's backend.
  static async create(runtime, model, onProgress) {
    const bytes = await fetchBytes(model.url, onProgress);
    const session = await runtime.ort.InferenceSession.create(bytes, {
      executionProviders: runtime.backend === "webgpu" ? ["webgpu", "wasm"] : ["wasm"], // WebGPU: the CPU for any node it lacks
      graphOptimizationLevel: "all",
    });
    return new Stylizer(runtime, session, model);
  }

  // Stylize RGBA `pixels` (width x height) with `styleWeights` (multi-style models: one weight per style):
  // RGBA bytes blended with the input by `strength`.
  async run(pixels, width, height, styleWeights, strength = 1) {
    const m = this.model;
    if (width < m.min_size || height < m.min_size) {
      throw new Error(`the picture is ${width}x${height}; the model needs at least ${m.min_size} pixels each way`);
    }
    const input = new this.ort.Tensor("float32", toTensorData(pixels, width, height, m.value_range), [1, 3, height, width]);
    const feeds = { [m.input]: input };
    if (m.style_input) feeds[m.style_input] = new this.ort.Tensor("float32", Float32Array.from(styleWeights), [m.styles.length]);
    const results = await this.session.run(feeds);
    const output = results[m.output];
    const data = await output.getData();
    output.dispose();
    return toPixels(data, width, height, m.value_range, pixels, strength);
  }

  release() {
    return this.session.release();
  }
}

// The style weights for style `a`, mixed with style `b` (or none) by `mix` in [0, 1]: a convex combination,
// as `fastnst stylize --mix` uses.
export function styleWeights(count, a, b = -1, mix = 0) {
  const weights = new Array(count).fill(0);
  weights[a] += b < 0 ? 1 : 1 - mix;
  if (b >= 0) weights[b] += mix;
  return weights;
}
