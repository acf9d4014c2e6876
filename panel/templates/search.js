// The search page's script (no inline script: the pages' CSP stays script-src 'self'). It reads
// the site's own search index (search/index.json, then its shards of tools) from the site
// itself, and searches, filters and sorts it in the browser: nothing is sent anywhere. Every
// value goes in as text (textContent, a link's href), never as markup.
(function () {
  "use strict";
  var script = document.currentScript;
  var box = document.querySelector("[data-search]");
  if (!script || !script.src || !box) {
    return;
  }
  var root = new URL("./", script.src); // the script sits at the site's root
  var PAGE = 50;
  var tools = [];
  var shown = PAGE;
  var q = box.querySelector("[data-search-q]");
  var category = box.querySelector("[data-search-category]");
  var verdict = box.querySelector("[data-search-verdict]");
  var sort = box.querySelector("[data-search-sort]");
  var status = box.querySelector("[data-search-status]");
  var results = box.querySelector("[data-search-results]");
  var more = box.querySelector("[data-search-more]");

  function json(path) {
    return fetch(new URL(path, root), { credentials: "same-origin" }).then(function (answer) {
      if (!answer.ok) {
        throw new Error(answer.status + " " + path);
      }
      return answer.json();
    });
  }

  function rows(shard) {
    var fields = shard.fields;
    return shard.tools.map(function (row) {
      var tool = {};
      fields.forEach(function (name, i) { tool[name] = row[i]; });
      tool.text = [tool.name, tool.tagline, tool.category, tool.slug].join(" ").toLowerCase();
      return tool;
    });
  }

  var ORDER = {
    ship: function (a, b) { return (b.ship_pct === null ? -1 : b.ship_pct) - (a.ship_pct === null ? -1 : a.ship_pct) || (b.score_mean || 0) - (a.score_mean || 0); },
    votes: function (a, b) { return b.votes - a.votes; },
    comparisons: function (a, b) { return b.comparisons - a.comparisons; },
    newest: function (a, b) { return b.added < a.added ? -1 : b.added > a.added ? 1 : 0; },
    name: function (a, b) { return a.name.localeCompare(b.name); }
  };

  function found() {
    var words = q.value.toLowerCase().split(/\s+/).filter(Boolean);
    var wanted = category.value;
    var tone = verdict.value;
    var list = tools.filter(function (tool) {
      return (!wanted || tool.category === wanted) && (!tone || tool.verdict === tone) &&
        words.every(function (word) { return tool.text.indexOf(word) >= 0; });
    });
    return list.sort(function (a, b) { return ORDER[sort.value](a, b) || a.name.localeCompare(b.name); });
  }

  function item(tool) {
    var li = document.createElement("li");
    li.className = "search-result";
    var link = document.createElement("a");
    link.href = new URL("tools/" + encodeURIComponent(tool.slug) + ".html", root).href;
    link.textContent = tool.name;
    var chip = document.createElement("span");
    chip.className = "chip chip--" + (["ship", "skip", "split"].indexOf(tool.verdict) >= 0 ? tool.verdict : "neutral");
    chip.textContent = tool.ship_pct === null ? "No panel yet" : tool.ship_pct + "% panel ship";
    var line = document.createElement("p");
    line.className = "tagline";
    line.textContent = tool.tagline;
    var meta = document.createElement("p");
    meta.className = "meta";
    meta.textContent = tool.category + " · " + tool.comparisons + " comparison" + (tool.comparisons === 1 ? "" : "s") +
      " · " + tool.votes + " vote" + (tool.votes === 1 ? "" : "s") + " · added " + tool.added;
    var head = document.createElement("p");
    head.className = "search-head";
    head.appendChild(link);
    head.appendChild(document.createTextNode(" "));
    head.appendChild(chip);
    li.appendChild(head);
    li.appendChild(line);
    li.appendChild(meta);
    return li;
  }

  function show() {
    var list = found();
    results.textContent = "";
    list.slice(0, shown).forEach(function (tool) { results.appendChild(item(tool)); });
    status.textContent = list.length + " of " + tools.length + " tools" + (list.length > shown ? ", the first " + shown + " shown" : "");
    more.hidden = list.length <= shown;
  }

  function again() {
    shown = PAGE;
    show();
  }

  var asked = new URLSearchParams(window.location.search).get("q");
  if (asked) {
    q.value = asked;
  }
  json("search/index.json").then(function (index) {
    return Promise.all(index.shards.map(json));
  }).then(function (shards) {
    shards.forEach(function (shard) { tools = tools.concat(rows(shard)); });
    box.hidden = false;
    document.querySelector("[data-search-fallback]").hidden = true;
    [q, category, verdict, sort].forEach(function (control) {
      control.addEventListener(control === q ? "input" : "change", again);
    });
    more.addEventListener("click", function () { shown += PAGE; show(); });
    show();
  }).catch(function (error) {
    var fallback = document.querySelector("[data-search-fallback] p");
    fallback.textContent = "The search index could not be read (" + error.message + "): search needs the site served over HTTP. Meanwhile, browse:";
  });
})();
