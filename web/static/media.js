// Camera and microphone: open them (falling back to audio only), list devices for pickers.
import { mediaErrorWords } from "/static/call_words.js";

const VIDEO_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } };

/**
 * Open camera + microphone. With no camera (or it fails) fall back to microphone only and
 * say so in `warning`; with no microphone either, throw an Error whose message is words.
 */
export async function openLocalMedia({ audioDeviceId, videoDeviceId } = {}) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("This browser cannot use a camera or microphone here (calls need a secure https page).");
  }
  const audio = audioDeviceId ? { deviceId: { exact: audioDeviceId } } : true;
  const video = videoDeviceId
    ? { ...VIDEO_CONSTRAINTS, deviceId: { exact: videoDeviceId } }
    : VIDEO_CONSTRAINTS;
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio, video }), warning: null };
  } catch (first) {
    if (first?.name === "NotAllowedError" || first?.name === "SecurityError") {
      throw new Error(mediaErrorWords(first));
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio, video: false });
      return {
        stream,
        warning: `Your camera could not be started (${mediaErrorWords(first)}) You can still talk with your microphone.`,
      };
    } catch (second) {
      throw new Error(mediaErrorWords(second));
    }
  }
}

export function stopStream(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

/** Fill a <select> with devices of `kind` ("audioinput" | "videoinput"), keeping `selectedId`. */
export async function fillDevicePicker(select, kind, selectedId) {
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === kind);
  select.replaceChildren();
  devices.forEach((device, index) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    const fallback = kind === "videoinput" ? `Camera ${index + 1}` : `Microphone ${index + 1}`;
    option.textContent = device.label || fallback;
    option.selected = device.deviceId === selectedId;
    select.append(option);
  });
  select.disabled = devices.length === 0;
  return devices.length;
}

/** The deviceId a track comes from, if the browser says. */
export const trackDeviceId = (track) => track?.getSettings?.().deviceId ?? "";
