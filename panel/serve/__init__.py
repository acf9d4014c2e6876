"""`panel serve`: the built site and its JSON API (community votes, card submissions), on
Starlette under uvicorn.

app.py assembles the app and runs it; api.py the endpoints; guard.py what every request passes
(security headers, the voter cookie, the origin check, body caps, the client's address);
desk.py the store, reached from a thread of its own; keeper.py the site rebuilt when the store
changes; files.py the static files; keys.py the key that signs voter cookies.
"""
