// Enrollment camera: live quality feedback in plain words, then take, confirm, send.
// Frames are sent for checking and dropped; nothing is saved until the person confirms.
(function () {
  "use strict";
  var box = document.getElementById("camera");
  var video = document.getElementById("video");
  var still = document.getElementById("still");
  var hint = document.getElementById("hint");
  var result = document.getElementById("result");
  var btnStart = document.getElementById("start");
  var btnSnap = document.getElementById("snap");
  var btnConfirm = document.getElementById("confirm");
  var btnRetake = document.getElementById("retake");
  var csrf = box.dataset.csrf, timer = null, checking = false, stream = null;

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
  function post(url, blob) {
    return fetch(url, {
      method: "POST", body: blob, credentials: "same-origin", cache: "no-store",
      headers: { "Content-Type": "image/jpeg", "X-CSRF-Token": csrf }
    }).then(function (r) { return r.json(); });
  }
  function check() {
    if (checking || !video.videoWidth) return;
    checking = true;
    var c = document.createElement("canvas");
    draw(c);
    frameBlob(c).then(function (b) { wipe(c); return post(box.dataset.qualityUrl, b); })
      .then(function (q) {
        hint.textContent = q.message;
        hint.className = "hint " + (q.ok ? "good" : "bad");
        btnSnap.disabled = !q.ok;
      }).catch(function () {}).finally(function () { checking = false; });
  }
  btnStart.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false })
      .then(function (s) {
        stream = s; video.srcObject = s; btnStart.hidden = true;
        timer = setInterval(check, 800);
      }).catch(function (e) { result.textContent = String(e); });
  });
  btnSnap.addEventListener("click", function () {
    draw(still);
    still.hidden = false; video.hidden = true;
    clearInterval(timer);
    btnSnap.hidden = true; btnConfirm.hidden = false; btnRetake.hidden = false;
  });
  btnRetake.addEventListener("click", function () {
    wipe(still); still.hidden = true; video.hidden = false;
    btnSnap.hidden = false; btnConfirm.hidden = true; btnRetake.hidden = true;
    timer = setInterval(check, 800);
  });
  btnConfirm.addEventListener("click", function () {
    btnConfirm.disabled = true;
    frameBlob(still).then(function (b) {
      wipe(still);
      return post(box.dataset.enrollUrl, b);
    }).then(function (r) {
      result.textContent = r.message;
      result.className = r.ok ? "ok" : "bad";
      result.dataset.ok = r.ok ? "1" : "0";
      if (r.ok) {
        if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
        video.hidden = true; still.hidden = true; btnConfirm.hidden = true; btnRetake.hidden = true;
        if (r.next) {
          var a = document.createElement("a");
          a.href = r.next; a.className = "button primary"; a.id = "after-enroll";
          a.textContent = box.dataset.nextLabel;
          result.appendChild(document.createTextNode(" ")); result.appendChild(a);
        }
      } else {
        btnConfirm.disabled = false; btnRetake.click();
      }
    });
  });
})();
