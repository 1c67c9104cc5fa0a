// Gate kiosk: camera frames and credentials go to the decide API with the gate key from the
// URL fragment. No frame is kept: each one is drawn, sent, and the canvas cleared at once.
(function () {
  "use strict";
  var root = document.getElementById("kiosk");
  var apId = root.dataset.ap;
  var words = JSON.parse(document.getElementById("kiosk-words").textContent);
  var verdict = document.getElementById("verdict");
  var verdictText = document.getElementById("verdict-text");
  var m = /(?:^|[#&])key=([^&]+)/.exec(window.location.hash);
  var key = m ? decodeURIComponent(m[1]) : sessionStorage.getItem("fg-kiosk-key");
  if (m) {
    sessionStorage.setItem("fg-kiosk-key", key);
    history.replaceState(null, "", window.location.pathname);  // keep the key off the screen
  }
  var busy = false, holdUntil = 0;

  function say(kind, text) {
    verdict.className = "verdict " + kind;
    verdictText.textContent = text;
  }
  function explain(res) {
    if (res.decision === "allow") return words.decisions.allow + " · " + (words.decisions.ok || "");
    var base = (res.reason || "").split(":")[0];
    if (base === "low_quality") {
      var why = res.reason.split(":")[1] || "low_quality";
      return words.quality[why] || words.quality.low_quality;
    }
    var out = words.decisions.deny + " · " + (words.decisions[base] || res.reason);
    // Only the ways in this door accepts (issue 16 item 10), never a generic list.
    if (others.length && res.method && res.method.indexOf("face") >= 0) {
      out += " · " + words.decisions.kiosk_use + " " + others.join(", ");
    }
    return out;
  }
  var others = [];  // the door's other methods, in this page's language, once it is known
  if (!key) { say("deny", words.decisions.kiosk_nokey); return; }

  // Nothing about this access point is in the page: ask the API with the kiosk's key.
  fetch("/v1/access-points/" + encodeURIComponent(apId) + "/kiosk", {
    headers: { "X-API-Key": key }, cache: "no-store"
  }).then(function (r) {
    return r.json().then(function (j) { return { status: r.status, body: j }; });
  }).then(function (r) {
    if (r.status >= 400) { say("deny", r.body.message || String(r.status)); return; }
    start(r.body);
  }).catch(function () { say("deny", "…"); });

  function text(id, value) { document.getElementById(id).textContent = value; }

  function start(ap) {
    var hasFace = ap.methods.indexOf("face") >= 0;
    text("sign-h", hasFace ? words.decisions.kiosk_face_here : ap.name);
    text("ap-name", ap.name);
    text("ap-operator", (ap.operator_name || "—") + (ap.operator_contact ? " · " + ap.operator_contact : ""));
    var tags = document.getElementById("ap-alt-tags");
    ap.methods.forEach(function (m) {
      if (m === "face") return;
      others.push(words.methods["m_" + m] || m);
      var tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = words.methods["m_" + m] || m;
      tags.appendChild(tag);
      tags.appendChild(document.createTextNode(" "));
    });
    document.getElementById("ap-alts").hidden = false;
    document.getElementById("sign").hidden = false;
    document.querySelectorAll(".kform").forEach(function (f) {
      f.hidden = ap.methods.indexOf(f.dataset.kind) < 0;
    });
    if (hasFace) document.getElementById("preview").hidden = false;
    challengeMode = ap.liveness === "challenge";
    if (hasFace && ap.face_enabled) startCamera();
  }
  var challengeMode = false;

  function decide(body, isFace) {
    busy = true;
    return fetch("/v1/access-points/" + encodeURIComponent(apId) + "/decide", {
      method: "POST", headers: { "X-API-Key": key }, body: body, cache: "no-store"
    }).then(function (r) {
      return r.json().then(function (j) { return { status: r.status, body: j }; });
    }).then(function (r) {
      var res = r.body;
      if (r.status >= 400) { say("deny", res.message || String(r.status)); holdUntil = Date.now() + 3000; return; }
      var quiet = isFace && res.decision === "deny" && (res.reason === "no_face");
      if (quiet) { say("idle", words.decisions.kiosk_waiting); return; }
      say(res.decision, explain(res));
      verdict.dataset.decision = res.decision;
      verdict.dataset.method = res.method;
      holdUntil = Date.now() + 3000;
    }).catch(function () { say("deny", "…"); })
      .finally(function () { busy = false; });
  }

  document.querySelectorAll(".kform").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var fd = new FormData(f);
      decide(fd, false);
      f.reset();
    });
  });

  var video = document.getElementById("kvideo");
  var canvas = document.getElementById("kcanvas");
  function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return;
    navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false })
      .then(function (stream) { video.srcObject = stream; setInterval(tick, 1200); })
      .catch(function () { /* no camera: the other methods still work */ });
  }

  // Issue 14: where the access point asks for it, a random prompt from the server ("turn
  // your head left", "nod"); three frames while the person moves go back with its nonce.
  function grab(cb) {
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    var ctx = canvas.getContext("2d");
    ctx.drawImage(video, 0, 0);
    canvas.toBlob(function (blob) {
      ctx.clearRect(0, 0, canvas.width, canvas.height);  // the frame leaves the page now
      cb(blob);
    }, "image/jpeg", 0.9);
  }
  // The seconds the prompt's frames take, counted down beside it (issue 14 item 3).
  var CHALLENGE_FRAMES = 3, CHALLENGE_GAP_MS = 900;
  var countdown = document.getElementById("kcountdown"), countdownTimer = null;
  function showCountdown(totalMs) {
    var end = Date.now() + totalMs;
    clearTimeout(countdownTimer);
    countdown.hidden = false;
    (function paint() {
      var left = Math.max(0, end - Date.now());
      countdown.textContent = Math.ceil(left / 1000) + " " + countdown.dataset.seconds;
      if (left > 0) { countdownTimer = setTimeout(paint, 100); } else { countdown.hidden = true; }
    })();
  }

  function challengeTick() {
    busy = true;
    fetch("/v1/access-points/" + encodeURIComponent(apId) + "/challenge", {
      method: "POST", headers: { "X-API-Key": key }, cache: "no-store"
    }).then(function (r) { return r.json(); }).then(function (c) {
      if (!c.challenge) { busy = false; holdUntil = Date.now() + 3000; return; }
      var lang = document.documentElement.lang === "en" ? "en" : "zh-CN";
      say("idle", c.message[lang]);
      root.dataset.prompt = c.prompt;
      showCountdown((CHALLENGE_FRAMES - 1) * CHALLENGE_GAP_MS);
      var fd = new FormData(), n = 0;
      fd.append("challenge", c.challenge);
      (function next() {
        grab(function (blob) {
          fd.append("frame", blob, "frame" + n + ".jpg");
          n += 1;
          if (n < CHALLENGE_FRAMES) { setTimeout(next, CHALLENGE_GAP_MS); } else { decide(fd, true); }
        });
      })();
    }).catch(function () { busy = false; });
  }

  function tick() {
    if (busy || Date.now() < holdUntil || !video.videoWidth) return;
    if (challengeMode) { challengeTick(); return; }
    // A burst of three frames 0.5 s apart: liveness reads the motion across them (issue 14;
    // one frame is its weakest check, and a photo held still does not move).
    busy = true;
    var fd = new FormData(), n = 0;
    (function next() {
      grab(function (blob) {
        fd.append("frame", blob, "frame" + n + ".jpg");
        n += 1;
        if (n < 3) { setTimeout(next, 500); } else { decide(fd, true); }
      });
    })();
  }
})();
