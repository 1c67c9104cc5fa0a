// Enrollment camera: live quality feedback in plain words, then an active liveness challenge
// (issue 14 item 3): the server picks a random prompt ("turn your head left", "nod"); three
// frames ~0.9 s apart (the first before the prompt shows) go back with its nonce. The server
// checks the movement and that a live person is there, and enrolls the best frame. No frame
// is kept: each is drawn, encoded, and the canvas wiped at once; nothing is saved unless the
// person pressed the button and the checks passed.
(function () {
  "use strict";
  var box = document.getElementById("camera");
  var video = document.getElementById("video");
  var grabCanvas = document.getElementById("grab");
  var hint = document.getElementById("hint");
  var promptEl = document.getElementById("prompt");
  var countdown = document.getElementById("countdown");
  var result = document.getElementById("result");
  var btnStart = document.getElementById("start");
  var btnSnap = document.getElementById("snap");
  var csrf = box.dataset.csrf, timer = null, checking = false, stream = null;
  var FRAMES = 3, GAP_MS = 900;

  function frameBlob(canvas) {
    return new Promise(function (resolve) { canvas.toBlob(resolve, "image/jpeg", 0.92); });
  }
  function draw(canvas) {
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
  }
  function wipe(canvas) {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    canvas.width = 0; canvas.height = 0;
  }
  function grab() {  // one frame as JPEG; the canvas is wiped before the promise resolves
    draw(grabCanvas);
    return frameBlob(grabCanvas).then(function (b) { wipe(grabCanvas); return b; });
  }
  function post(url, body, type) {
    var headers = { "X-CSRF-Token": csrf };
    if (type) headers["Content-Type"] = type;
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin", cache: "no-store", headers: headers
    }).then(function (r) { return r.json(); });
  }
  function check() {
    if (checking || !video.videoWidth) return;
    checking = true;
    grab().then(function (b) { return post(box.dataset.qualityUrl, b, "image/jpeg"); })
      .then(function (q) {
        hint.textContent = q.message;
        hint.className = "hint " + (q.ok ? "good" : "bad");
        btnSnap.disabled = !q.ok;
      }).catch(function () {}).finally(function () { checking = false; });
  }
  function watch() { clearInterval(timer); timer = setInterval(check, 800); }
  function wait(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  btnStart.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false })
      .then(function (s) {
        stream = s; video.srcObject = s; btnStart.hidden = true;
        watch();
      }).catch(function (e) { result.textContent = String(e); });
  });

  function showCountdown(totalMs) {
    var end = Date.now() + totalMs;
    countdown.hidden = false;
    function paint() {
      var left = Math.max(0, end - Date.now());
      countdown.textContent = Math.ceil(left / 1000) + " " + box.dataset.seconds;
      countdown.dataset.left = String(Math.ceil(left / 1000));
      if (left > 0) countdownTimer = setTimeout(paint, 100);
    }
    paint();
  }
  var countdownTimer = null;

  function finish(r) {
    clearTimeout(countdownTimer);
    countdown.hidden = true; promptEl.hidden = true;  // data-prompt stays: the last prompt
    result.textContent = r.message;
    result.className = r.ok ? "ok" : "bad";
    result.dataset.ok = r.ok ? "1" : "0";
    if (r.ok) {
      if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
      video.hidden = true; btnSnap.hidden = true;
      if (r.next) {
        var a = document.createElement("a");
        a.href = r.next; a.className = "button primary"; a.id = "after-enroll";
        a.textContent = box.dataset.nextLabel;
        result.appendChild(document.createTextNode(" ")); result.appendChild(a);
      }
    } else {
      btnSnap.disabled = false;  // a new attempt gets a new prompt
      watch();
    }
  }

  btnSnap.addEventListener("click", function () {
    btnSnap.disabled = true;
    clearInterval(timer);
    result.textContent = ""; delete result.dataset.ok;
    var fd = new FormData();
    post(box.dataset.challengeUrl, null).then(function (c) {
      if (!c.challenge) throw c;
      fd.append("challenge", c.challenge);
      // The start position first, before the person knows what to do.
      return grab().then(function (b) {
        fd.append("frame", b, "frame0.jpg");
        promptEl.textContent = c.message;
        promptEl.hidden = false;
        box.dataset.prompt = c.prompt;
        showCountdown((FRAMES - 1) * GAP_MS);
        var chain = Promise.resolve();
        for (var i = 1; i < FRAMES; i++) {
          (function (n) {
            chain = chain.then(function () { return wait(GAP_MS); })
              .then(grab).then(function (b) { fd.append("frame", b, "frame" + n + ".jpg"); });
          })(i);
        }
        return chain;
      });
    }).then(function () {
      countdown.textContent = box.dataset.checking;
      return post(box.dataset.enrollUrl, fd);
    }).then(finish, function (err) {
      finish({ ok: false, message: (err && err.message) || "…" });
    }).finally(function () {
      fd = null;  // the frames leave the page with the request
    });
  });
})();
