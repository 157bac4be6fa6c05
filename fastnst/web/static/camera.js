// The webcam: one stream into a <video>, with messages a visitor can act on when it cannot start,
// and the frames-per-second counter the page shows while it runs.

// Why the camera did not start, in words that say what to do (getUserMedia's errors are DOMException names).
export function cameraMessage(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera access was refused. Allow the camera for this page (the camera icon in the address bar) and press Start camera again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found. Connect one, or drop an image instead.";
    case "NotReadableError":
    case "AbortError":
      return "The camera is in use by another program or could not start. Close the other program and try again.";
    default:
      return `The camera could not start: ${error?.message || error}`;
  }
}

export class Camera {
  constructor(video) {
    this.video = video;
    this.stream = null;
  }

  get running() {
    return this.stream !== null;
  }

  // Ask for the camera and play it; throws an Error with cameraMessage's text when it cannot.
  async start() {
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      throw new Error("The camera needs a secure page: open it at http://localhost:PORT (as fastnst web prints) or over https.");
    }
    this.stop(); // never two streams: the first would keep the camera on
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
    } catch (error) {
      throw new Error(cameraMessage(error));
    }
    this.video.srcObject = this.stream;
    await this.video.play();
  }

  stop() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.video.srcObject = null;
  }
}

// Frames per second over the last half second or more, reported through `onUpdate(fps)`.
export class FpsCounter {
  constructor(onUpdate) {
    this.onUpdate = onUpdate;
    this.reset();
  }

  reset() {
    this.count = 0;
    this.since = performance.now();
    this.fps = 0;
  }

  tick() {
    this.count++;
    const elapsed = performance.now() - this.since;
    if (elapsed >= 500) {
      this.fps = (1000 * this.count) / elapsed;
      this.count = 0;
      this.since = performance.now();
      this.onUpdate(this.fps);
    }
  }
}
