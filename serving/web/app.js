// The try-it page: one photo to POST /predictions/<model>, its answer drawn over it. No framework, no build step.
"use strict";

const MASK_RGBA = [0, 200, 255, 115];
const OUTLINE = "#ff2d7a";
const model = document.querySelector('meta[name="wms-model"]').content;
const $ = (id) => document.getElementById(id);

function show(id, text) {
  $(id).textContent = text;
  $(id).hidden = !text;
}

async function ask(file) {
  show("error", "");
  $("answer").hidden = true;
  show("status", `Sending ${file.name} (${(file.size / 1024).toFixed(0)} KB)…`);
  const headers = { "Content-Type": file.type || "application/octet-stream" };
  const token = $("token").value.trim();
  sessionStorage.setItem("wms-token", token);
  if (token) headers.Authorization = `Bearer ${token}`;
  const started = performance.now();
  let response, answer;
  try {
    response = await fetch(`/predictions/${encodeURIComponent(model)}`, { method: "POST", headers, body: file });
    answer = await response.json();
  } catch (error) {
    show("status", "");
    show("error", `No answer from the service: ${error.message}`);
    return;
  }
  const elapsed = performance.now() - started;
  show("status", "");
  if (!response.ok) {
    show("error", `${response.status} ${answer.cause || "error"}: ${answer.error || JSON.stringify(answer)}`);
    return;
  }
  await draw(file, answer);
  $("model").textContent = answer.model;
  $("version").textContent = answer.model_version;
  $("trained-on").textContent = answer.trained_on;
  $("window").textContent = answer.bbox
    ? `${(100 * answer.window_fraction).toFixed(2)} % of the photo, box ${answer.bbox.join(", ")}`
    : "none found";
  $("confidence").textContent = answer.confidence.toFixed(3);
  $("elapsed").textContent = `${elapsed.toFixed(0)} ms`;
  show("notice", answer.notice || "");
  $("answer").hidden = false;
  document.body.dataset.answered = answer.model_version;
}

async function draw(file, answer) {
  // The answer's pixels are those of the photo as displayed (turned by its EXIF orientation), as here.
  const photo = await createImageBitmap(file, { imageOrientation: "from-image" });
  const canvas = $("overlay");
  canvas.width = answer.width;
  canvas.height = answer.height;
  const context = canvas.getContext("2d");
  context.drawImage(photo, 0, 0, answer.width, answer.height);
  const maskBytes = Uint8Array.from(atob(answer.mask_png_base64), (c) => c.charCodeAt(0));
  const mask = await createImageBitmap(new Blob([maskBytes], { type: "image/png" }));
  const scratch = new OffscreenCanvas(answer.width, answer.height).getContext("2d");
  scratch.drawImage(mask, 0, 0);
  const pixels = scratch.getImageData(0, 0, answer.width, answer.height);
  for (let i = 0; i < pixels.data.length; i += 4) {
    const inside = pixels.data[i] > 127;
    pixels.data.set(inside ? MASK_RGBA : [0, 0, 0, 0], i);
  }
  scratch.putImageData(pixels, 0, 0);
  context.drawImage(scratch.canvas, 0, 0);
  if (answer.polygon.length > 2) {
    context.beginPath();
    answer.polygon.forEach(([x, y], index) => (index ? context.lineTo(x, y) : context.moveTo(x, y)));
    context.closePath();
    context.lineWidth = Math.max(2, Math.round(Math.max(answer.width, answer.height) / 250));
    context.strokeStyle = OUTLINE;
    context.stroke();
  }
}

$("token").value = sessionStorage.getItem("wms-token") || "";
$("photo").addEventListener("change", (event) => event.target.files[0] && ask(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files[0]) ask(event.dataTransfer.files[0]);
});
