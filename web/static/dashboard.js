// Live updates of the dashboard's pages (a file of its own: the Content-Security-Policy allows
// no inline script). A server-sent event says a run file changed; the live part is replaced.
(function () {
  var live = document.getElementById('live');
  if (!live) { return; }
  function refresh() {
    fetch(live.dataset.src, {cache: 'no-store'}).then(function (r) {
      if (!r.ok) { return; }
      return r.text().then(function (html) {
        var open = Array.prototype.map.call(live.querySelectorAll('details[open]'),
          function (d) { return d.dataset.key; });
        live.innerHTML = html;
        open.forEach(function (key) {
          var d = live.querySelector('details[data-key="' + key + '"]');
          if (d) { d.open = true; load(d); }
        });
        document.body.dataset.refreshed = String(Date.now());
      });
    });
  }
  function load(d) {
    var box = d.querySelector('.fragment');
    if (box && d.dataset.fragment) {
      fetch(d.dataset.fragment, {cache: 'no-store'}).then(function (r) {
        return r.ok ? r.text() : '';
      }).then(function (html) { box.innerHTML = html; });
      return;
    }
    var pre = d.querySelector('pre');
    if (pre && d.dataset.log) {
      fetch(d.dataset.log, {cache: 'no-store'}).then(function (r) { return r.text(); })
        .then(function (t) { pre.textContent = t; });
    }
  }
  live.addEventListener('toggle', function (e) {
    if (e.target.tagName === 'DETAILS' && e.target.open) { load(e.target); }
  }, true);
  if (window.EventSource) {
    var events = new EventSource(live.dataset.events);
    events.addEventListener('changed', refresh);
  }
  setInterval(refresh, 10000);
})();
