// panel's one script (no inline script, so the pages' CSP stays script-src 'self'). Everywhere,
// even opened from disk, it keeps the reader's bookmarks in this browser (localStorage: nothing
// is sent). Served by `panel serve`, it also reads each tool's live community count from the
// site's API (on every page that shows one), shows the vote buttons, posts a vote and puts the
// new count in place. Without the API the page keeps the counts of its build.
// Every value it writes goes in as text (textContent, a link's href), never as markup.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) {
    return;
  }
  var root = new URL("./", script.src); // the script sits at the site's root

  // ---- bookmarks: [{href (from the site's root), title}] in localStorage -------------------
  var KEY = "panel.bookmarks";

  function saved() {
    try {
      var list = JSON.parse(window.localStorage.getItem(KEY) || "[]");
      return Array.isArray(list) ? list.filter(function (b) {
        return b && typeof b.href === "string" && typeof b.title === "string" && !/^[a-z]+:|^\/|\.\./i.test(b.href);
      }) : [];
    } catch (e) {
      return [];
    }
  }

  function keep(list) {
    try {
      window.localStorage.setItem(KEY, JSON.stringify(list));
      return true;
    } catch (e) {
      return false;
    }
  }

  function listBookmarks() {
    var list = saved();
    Array.prototype.forEach.call(document.querySelectorAll("[data-bookmarks]"), function (box) {
      var ul = box.querySelector(".bookmark-list");
      var empty = box.querySelector(".bookmarks-empty");
      ul.textContent = "";
      list.forEach(function (b) {
        var li = document.createElement("li");
        var a = document.createElement("a");
        a.href = new URL(b.href, root).href;
        a.textContent = b.title;
        li.appendChild(a);
        ul.appendChild(li);
      });
      if (empty) {
        empty.hidden = list.length > 0;
      }
      box.hidden = false;
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-bookmark]"), function (button) {
      var href = button.getAttribute("data-bookmark");
      var on = list.some(function (b) {
        return b.href === href;
      });
      button.setAttribute("aria-pressed", on ? "true" : "false");
      button.textContent = on ? "Bookmarked" : "Bookmark";
    });
  }

  function toggleBookmark(button) {
    var href = button.getAttribute("data-bookmark");
    var list = saved();
    var kept = list.filter(function (b) {
      return b.href !== href;
    });
    if (kept.length === list.length) {
      kept.unshift({ href: href, title: button.getAttribute("data-bookmark-title") || href });
    }
    keep(kept);
    listBookmarks();
  }

  var storable = keep(saved());
  if (storable) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-bookmark]"), function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        toggleBookmark(button);
      });
    });
    listBookmarks();
  }

  // ---- live counts and votes: only where the site's API is (panel serve) -------------------
  if (!/^https?:$/.test(window.location.protocol) || !window.fetch) {
    return;
  }
  var api = new URL("api/", root);

  var MESSAGES = {
    403: "Your vote was refused: this browser needs cookies on for this site to vote.",
    404: "This tool is not on the site any more.",
    429: "Too many votes from your address or network: try again later.",
  };

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function percent(community) {
    return community.votes ? community.ship_pct + "%" : "\u2014";
  }

  function votes(community) {
    return community.votes + (community.votes === 1 ? " vote" : " votes");
  }

  function show(slug, answer) {
    var community = answer.community;
    each("[data-community-label]", function (el) {
      if (el.getAttribute("data-community-label") === slug) {
        el.textContent = community.label;
      }
    });
    each("[data-community-pct]", function (el) {
      if (el.getAttribute("data-community-pct") === slug) {
        el.textContent = percent(community);
      }
    });
    each("[data-community-votes]", function (el) {
      if (el.getAttribute("data-community-votes") === slug) {
        el.textContent = votes(community);
      }
    });
    each("[data-vote]", function (box) {
      if (box.getAttribute("data-vote") !== slug) {
        return;
      }
      Array.prototype.forEach.call(box.querySelectorAll("button[data-verdict]"), function (button) {
        var chosen = button.getAttribute("data-verdict") === answer.your_vote;
        button.setAttribute("aria-pressed", chosen ? "true" : "false");
      });
    });
  }

  function say(box, text) {
    var status = box.querySelector(".vote-status");
    if (status) {
      status.textContent = text;
    }
  }

  function request(path, options) {
    options.credentials = "same-origin";
    options.headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    return fetch(new URL(path, api), options).then(function (response) {
      var wait = Number(response.headers.get("Retry-After")) || 0;
      return response.json().then(
        function (body) {
          return { status: response.status, body: body, wait: wait };
        },
        function () {
          return { status: response.status, body: {}, wait: wait };
        }
      );
    });
  }

  function later(seconds) {
    return new Promise(function (resolve) {
      window.setTimeout(resolve, seconds * 1000);
    });
  }

  // A vote the server found too early (a clock off, 429 with a short Retry-After) is sent
  // again once, when the server says.
  function post(slug, verdict, retries) {
    return request("votes", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ tool: slug, verdict: verdict }),
    }).then(function (answer) {
      if (answer.status === 429 && retries > 0 && answer.wait > 0 && answer.wait <= 5) {
        return later(answer.wait).then(function () {
          return post(slug, verdict, retries - 1);
        });
      }
      return answer;
    });
  }

  function cast(box, slug, verdict, ready) {
    var buttons = box.querySelectorAll("button[data-verdict]");
    Array.prototype.forEach.call(buttons, function (b) {
      b.disabled = true;
    });
    say(box, "");
    later(Math.max(0, ready - Date.now()) / 1000)
      .then(function () {
        return post(slug, verdict, 1);
      })
      .then(function (answer) {
        if (answer.status === 200) {
          show(slug, answer.body);
          say(box, "Thanks: your vote counts.");
        } else {
          say(box, MESSAGES[answer.status] || "Your vote could not be counted: try again later.");
        }
      })
      .catch(function () {
        say(box, "Your vote could not be sent: check your connection.");
      })
      .then(function () {
        Array.prototype.forEach.call(buttons, function (b) {
          b.disabled = false;
        });
      });
  }

  function start(box) {
    var slug = box.getAttribute("data-vote");
    request("tools/" + encodeURIComponent(slug), { method: "GET" })
      .then(function (answer) {
        if (answer.status !== 200 || !answer.body.community) {
          return; // no API here: the buttons stay hidden
        }
        show(slug, answer.body);
        // a new voter cookie counts a moment after the page set it: a vote waits till then
        var wait = Number(answer.body.votes_in) || 0;
        var ready = Date.now() + (wait > 0 ? wait * 1000 + 250 : 0);
        box.addEventListener("click", function (event) {
          var button = event.target.closest("button[data-verdict]");
          if (button && box.contains(button)) {
            cast(box, slug, button.getAttribute("data-verdict"), ready);
          }
        });
        box.hidden = false;
      })
      .catch(function () {});
  }

  each("[data-vote]", start);

  // Counts shown without vote buttons (the index, a comparison tile of another page): read live.
  var counted = {};
  each("[data-vote]", function (box) {
    counted[box.getAttribute("data-vote")] = true;
  });
  each("[data-community-label], [data-community-pct]", function (el) {
    var slug = el.getAttribute("data-community-label") || el.getAttribute("data-community-pct");
    if (counted[slug]) {
      return;
    }
    counted[slug] = true;
    request("tools/" + encodeURIComponent(slug), { method: "GET" })
      .then(function (answer) {
        if (answer.status === 200 && answer.body.community) {
          show(slug, answer.body);
        }
      })
      .catch(function () {});
  });
})();
